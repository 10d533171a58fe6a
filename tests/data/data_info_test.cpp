// The data_info app end to end: its report on a small CIFAR-10 folder, and the one-line error on bad input.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/data/fixtures.h"

namespace {

// Runs a command, returns its exit status and its combined output.
int run(const std::string& cmd, std::string& output) {
  std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) output.append(buf.data(), n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const std::string kApp = std::string(ISLKD_BINARY_DIR) + "/apps/data_info";

}  // namespace

TEST(DataInfo, ReportsCountsStatisticsAndFirstLabels) {
  ASSERT_TRUE(std::filesystem::exists(kApp)) << "build the data_info target first";
  islkd::test::TempDir dir;
  islkd::test::write_bytes(dir / "test_batch.bin", islkd::test::cifar_records(0, 6, false));
  std::string out;
  ASSERT_EQ(run(kApp + " --format cifar10 --split test --path " + dir.str(), out), 0) << out;
  EXPECT_NE(out.find("instances:  6"), std::string::npos) << out;
  EXPECT_NE(out.find("classes:    10"), std::string::npos) << out;
  // fixture labels (i*7+3)%10 for i = 0..4: 3 0 7 4 1
  EXPECT_NE(out.find("first labels: 3 (cat) 0 (airplane) 7 (horse) 4 (deer) 1 (automobile)"), std::string::npos)
      << out;
  EXPECT_NE(out.find("channel 2: mean"), std::string::npos) << out;
}

TEST(DataInfo, BadInputIsOneLineAndExitCodeOne) {
  ASSERT_TRUE(std::filesystem::exists(kApp)) << "build the data_info target first";
  islkd::test::TempDir dir;
  islkd::test::write_bytes(dir / "test_batch.bin", {1, 2, 3});
  std::string out;
  EXPECT_EQ(run(kApp + " --format cifar10 --split test --path " + dir.str(), out), 1);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find("data_info: error: "), std::string::npos) << out;
  EXPECT_NE(out.find("test_batch.bin"), std::string::npos) << out;
}

namespace {

// The mixed-size ImageFolder of tests/data/make_fixtures.py (PIL, torchvision under /usr/bin/python3) in dir/m.
void make_mixed(const islkd::test::TempDir& dir) {
  const std::string cmd = std::string("/usr/bin/python3 ") + ISLKD_SOURCE_DIR + "/tests/data/make_fixtures.py '" +
                          (dir / "m") + "' mixed_imagefolder";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// The app's error line ("data_info: error: ..."; stderr, so anywhere among the buffered stdout lines), or "".
std::string error_line(const std::string& s) {
  const size_t start = s.find("data_info: error: ");
  if (start == std::string::npos) return "";
  return s.substr(start, s.find('\n', start) - start);
}

}  // namespace

TEST(DataInfo, ImageFolderReportsTheStoredSizeDistributionAndTheImageSize) {
  ASSERT_TRUE(std::filesystem::exists(kApp)) << "build the data_info target first";
  islkd::test::TempDir dir;
  make_mixed(dir);
  std::string out;
  // train: 20x30 RGB, 47x33 grey, 64x64 RGBA, 9x50 RGB, 64x48 JPEG, 33x47 RGB (width x height).
  ASSERT_EQ(run(kApp + " --format imagefolder --split train --image-size 24 --path " + dir / "m", out), 0) << out;
  EXPECT_NE(out.find("image:      3 x 24 x 24"), std::string::npos) << out;
  EXPECT_NE(out.find("stored sizes (6 files, headers only): width min 9 median 33 max 64; height min 30 median 47 "
                     "max 64; 6 distinct sizes"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("stored channels: 1 grey, 0 grey+alpha, 4 RGB, 1 RGBA (all read as RGB)"), std::string::npos)
      << out;
  EXPECT_NE(out.find("image size: 24 (evaluation: shorter side resized to 27, centre 24x24 crop; training: "
                     "RandomResizedCrop 24x24 + flip; Pillow bilinear)"),
            std::string::npos)
      << out;
  // Without --image-size the sizes must agree: the report says so before the reader stops at the second image.
  out.clear();
  EXPECT_EQ(run(kApp + " --format imagefolder --split train --path " + dir / "m", out), 1) << out;
  EXPECT_NE(out.find("these differ, so give --image-size"), std::string::npos) << out;
  // (which image fails first depends on the thread count: every one after the first has another size)
  EXPECT_NE(error_line(out).find(", the dataset's images are 20x30 (entry "), std::string::npos) << out;
}

TEST(DataInfo, CorruptImageFolderFileIsAnErrorNamingIt) {
  ASSERT_TRUE(std::filesystem::exists(kApp)) << "build the data_info target first";
  islkd::test::TempDir dir;
  make_mixed(dir);
  std::string out;
  EXPECT_EQ(run(kApp + " --format imagefolder --split train --image-size 24 --path " + dir / "m/corrupt", out), 1)
      << out;
  EXPECT_NE(error_line(out).find("c_garbage.jpg: cannot decode image"), std::string::npos) << out;
}

// The normalisation in effect: the format's own by default, --normalization's when given; an unknown name is one
// error line listing the known ones.
TEST(DataInfo, PrintsTheNormalisationInEffect) {
  ASSERT_TRUE(std::filesystem::exists(kApp)) << "build the data_info target first";
  islkd::test::TempDir dir;
  islkd::test::write_bytes(dir / "test_batch.bin", islkd::test::cifar_records(0, 6, false));
  std::string out;
  ASSERT_EQ(run(kApp + " --format cifar10 --split test --path " + dir.str(), out), 0) << out;
  EXPECT_NE(out.find("normalisation: cifar10 (mean/std per channel 0.4914/0.2470, 0.4822/0.2435, 0.4465/0.2616; "
                     "the format's own)"),
            std::string::npos)
      << out;
  out.clear();
  ASSERT_EQ(run(kApp + " --format cifar10 --split test --normalization imagenet --path " + dir.str(), out), 0) << out;
  EXPECT_NE(out.find("normalisation: imagenet (mean/std per channel 0.4850/0.2290, 0.4560/0.2240, 0.4060/0.2250; "
                     "--normalization)"),
            std::string::npos)
      << out;
  out.clear();
  EXPECT_EQ(run(kApp + " --format cifar10 --split test --normalization imagenet1k --path " + dir.str(), out), 1)
      << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find("unknown normalisation 'imagenet1k' (known: cifar10, cifar100, svhn, cinic10, fashion-mnist, "
                     "mnist, imagenet, half)"),
            std::string::npos)
      << out;
}
