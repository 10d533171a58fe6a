// Readers against files written by independent tools (numpy, gzip, scipy.io.savemat with and without
// compression, PIL) through tests/data/make_fixtures.py under Debian's /usr/bin/python3. A missing python module
// fails these tests: CI must have them.
#include <cstdlib>
#include <fstream>

#include "data/dataset.h"
#include "tests/data/fixtures.h"

using namespace islkd;
using namespace islkd::data;

namespace {

// Runs make_fixtures.py for one format into dir; fails the test when the tool fails.
::testing::AssertionResult make_fixtures(const test::TempDir& dir, const std::string& kind) {
  std::string cmd = std::string("/usr/bin/python3 ") + ISLKD_SOURCE_DIR + "/tests/data/make_fixtures.py '" +
                    dir.str() + "/" + kind + "' " + kind;
  int rc = std::system(cmd.c_str());
  if (rc != 0) return ::testing::AssertionFailure() << "`" << cmd << "` failed (" << rc << ")";
  return ::testing::AssertionSuccess();
}

// Instance i of the dataset holds fixture instance first[i] (label from fixture_label(first, classes)).
void expect_values(const Dataset& ds, int64_t n, int c, int h, int w, int classes, int64_t first_offset = 0) {
  ASSERT_EQ(ds.size(), n);
  ASSERT_EQ(ds.channels(), c);
  ASSERT_EQ(ds.height(), h);
  ASSERT_EQ(ds.width(), w);
  std::vector<uint8_t> px(static_cast<size_t>(c * h * w));
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(ds.label(i), test::fixture_label(i + first_offset, classes)) << "instance " << i;
    ds.read(i, px.data());
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          ASSERT_EQ(px[(ch * h + y) * w + x], test::fixture_pixel(i + first_offset, ch, y, x))
              << "instance " << i << " c " << ch << " y " << y << " x " << x;
  }
}

}  // namespace

TEST(PythonFixtures, Cifar10FromNumpy) {
  test::TempDir dir;
  ASSERT_TRUE(make_fixtures(dir, "cifar10"));
  expect_values(*open_dataset("cifar10", dir / "cifar10", "train"), 20, 3, 32, 32, 10);
  expect_values(*open_dataset("cifar10", dir / "cifar10", "test"), 3, 3, 32, 32, 10);
}

TEST(PythonFixtures, Cifar100FromNumpyFineAndCoarse) {
  test::TempDir dir;
  ASSERT_TRUE(make_fixtures(dir, "cifar100"));
  expect_values(*open_dataset("cifar100", dir / "cifar100", "train"), 6, 3, 32, 32, 100);
  DatasetOptions o;
  o.cifar100_coarse = true;
  auto coarse = open_dataset("cifar100", dir / "cifar100", "test", o);
  ASSERT_EQ(coarse->size(), 2);
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(coarse->label(i), test::fixture_label(i, 100) % 20);
}

TEST(PythonFixtures, IdxFromNumpyGzipAndRaw) {
  test::TempDir dir;
  ASSERT_TRUE(make_fixtures(dir, "idx"));
  auto train = open_dataset("idx", dir / "idx/fashion", "train");
  expect_values(*train, 9, 1, 28, 28, 10);
  expect_values(*open_dataset("idx", dir / "idx/fashion", "test"), 4, 1, 28, 28, 10);
  EXPECT_EQ(train->normalization().name, "fashion-mnist") << "the folder name says fashion";
}

TEST(PythonFixtures, SvhnFromScipySavematCompressedAndNot) {
  test::TempDir dir;
  ASSERT_TRUE(make_fixtures(dir, "svhn"));
  // train: compressed, y float64; test: uncompressed, y uint8; extra: compressed, y int32. Label 10 -> digit 0.
  expect_values(*open_dataset("svhn", dir / "svhn/svhn", "train"), 7, 3, 32, 32, 10);
  expect_values(*open_dataset("svhn", dir / "svhn/svhn", "test"), 5, 3, 32, 32, 10);
  expect_values(*open_dataset("svhn", dir / "svhn/svhn", "extra"), 3, 3, 32, 32, 10);
}

TEST(PythonFixtures, ImageFolderFromPilPngExactJpegClose) {
  test::TempDir dir;
  ASSERT_TRUE(make_fixtures(dir, "imagefolder"));
  auto ds = open_dataset("imagefolder", dir / "imagefolder", "train");
  ASSERT_EQ(ds->size(), 9);
  EXPECT_EQ(ds->class_names(), (std::vector<std::string>{"airplane", "cat", "dog"}));
  // Sorted classes: airplane holds fixtures 3,4,5; cat 0,1,2; dog 6,7,8 (img<k>.png, then the .jpg).
  const int64_t fixture_of[] = {3, 4, 5, 0, 1, 2, 6, 7, 8};
  const char* cls[] = {"airplane", "airplane", "airplane", "cat", "cat", "cat", "dog", "dog", "dog"};
  std::vector<uint8_t> px(3 * 12 * 10);
  for (int64_t i = 0; i < 9; ++i) {
    EXPECT_EQ(ds->label(i), i / 3);
    ds->read(i, px.data());
    const int64_t f = fixture_of[i];
    if (i % 3 < 2) {
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 12; ++y)
          for (int x = 0; x < 10; ++x)
            ASSERT_EQ(px[(c * 12 + y) * 10 + x], test::fixture_pixel(f, c, y, x)) << "png instance " << i;
    } else {
      // JPEG decoders may differ in IDCT rounding: compare with PIL's decode of the same file.
      std::ifstream in(dir / ("imagefolder/decoded_" + std::string(cls[i]) + "_" + std::to_string(f) + ".bin"),
                       std::ios::binary);
      std::vector<uint8_t> ref(px.size());
      in.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size()));
      ASSERT_TRUE(in.good());
      int worst = 0;
      for (size_t k = 0; k < px.size(); ++k) worst = std::max(worst, std::abs(int(px[k]) - int(ref[k])));
      EXPECT_LE(worst, 4) << "jpeg instance " << i;
    }
  }
}
