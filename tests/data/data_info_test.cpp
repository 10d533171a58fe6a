// The data_info app end to end: its report on a small CIFAR-10 folder, and the one-line error on bad input.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>

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
