// IDX (MNIST / Fashion-MNIST) reader: C++-written fixtures raw and gzip, malformed files, the real Debian data.
#include <filesystem>
#include <functional>

#include "data/dataset.h"
#include "data/formats.h"
#include "kernels/common/error.h"
#include "tests/common/test_util.h"
#include "tests/data/fixtures.h"

using namespace islkd;
using namespace islkd::data;

namespace {

void write_idx_dir(const test::TempDir& dir, const std::string& prefix, int64_t n, bool gz) {
  auto img = test::idx_images(n, 28, 28), lab = test::idx_labels(n);
  std::string sfx = gz ? ".gz" : "";
  test::write_bytes(dir / (prefix + "-images-idx3-ubyte" + sfx), gz ? test::gzip_bytes(img) : img);
  test::write_bytes(dir / (prefix + "-labels-idx1-ubyte" + sfx), gz ? test::gzip_bytes(lab) : lab);
}

void expect_fixture_values(const Dataset& ds, int64_t n) {
  ASSERT_EQ(ds.size(), n);
  ASSERT_EQ(ds.channels(), 1);
  ASSERT_EQ(ds.height(), 28);
  ASSERT_EQ(ds.width(), 28);
  std::vector<uint8_t> px(28 * 28);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(ds.label(i), test::fixture_label(i, 10)) << "instance " << i;
    ds.read(i, px.data());
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x)
        ASSERT_EQ(px[y * 28 + x], test::fixture_pixel(i, 0, y, x)) << "instance " << i << " y " << y << " x " << x;
  }
}

using test::error_of;

}  // namespace

TEST(IdxReader, RawFilesReadValueByValue) {
  test::TempDir dir;
  write_idx_dir(dir, "train", 13, false);
  write_idx_dir(dir, "t10k", 5, false);
  expect_fixture_values(*open_dataset("mnist", dir.str(), "train"), 13);
  expect_fixture_values(*open_dataset("mnist", dir.str(), "test"), 5);
}

TEST(IdxReader, GzipFilesReadValueByValue) {
  test::TempDir dir;
  write_idx_dir(dir, "train", 17, true);
  auto ds = open_dataset("idx", dir.str(), "train");
  expect_fixture_values(*ds, 17);
  EXPECT_FALSE(ds->hflip_makes_sense()) << "a folder without 'fashion' in its name holds digits";
  EXPECT_EQ(ds->normalization().name, "mnist");
}

TEST(IdxReader, TruncatedImageFileNamesFileAndSizes) {
  auto img = test::idx_images(4, 28, 28), lab = test::idx_labels(4);
  img.resize(img.size() - 10);
  std::string msg =
      error_of([&] { parse_idx(img.data(), img.size(), "imgs.idx", lab.data(), lab.size(), "labs.idx", 10); });
  EXPECT_NE(msg.find("imgs.idx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("size mismatch"), std::string::npos) << msg;
}

TEST(IdxReader, TruncatedGzipIsAnError) {
  auto img = test::gzip_bytes(test::idx_images(4, 28, 28)), lab = test::idx_labels(4);
  img.resize(img.size() / 2);
  std::string msg = error_of([&] { parse_idx(img.data(), img.size(), "imgs.gz", lab.data(), lab.size(), "labs", 10); });
  EXPECT_NE(msg.find("imgs.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(IdxReader, WrongMagicIsAnError) {
  auto img = test::idx_images(2, 28, 28), lab = test::idx_labels(2);
  img[0] = 0x50;
  EXPECT_NE(error_of([&] { parse_idx(img.data(), img.size(), "a.idx", lab.data(), lab.size(), "b", 10); })
                .find("a.idx: not an IDX file"),
            std::string::npos);
  img[0] = 0;
  img[2] = 0x0d;  // float data
  EXPECT_NE(error_of([&] { parse_idx(img.data(), img.size(), "a.idx", lab.data(), lab.size(), "b", 10); })
                .find("element type"),
            std::string::npos);
}

TEST(IdxReader, HeaderDimensionsDescribingTooMuchDataAreAnError) {
  auto img = test::idx_images(2, 28, 28), lab = test::idx_labels(2);
  img[4] = 0x7f;  // N = 2^31-ish
  std::string msg = error_of([&] { parse_idx(img.data(), img.size(), "a.idx", lab.data(), lab.size(), "b", 10); });
  EXPECT_NE(msg.find("a.idx: IDX dimensions at offset 4"), std::string::npos) << msg;
}

TEST(IdxReader, LabelOutOfRangeNamesEntryAndOffset) {
  auto img = test::idx_images(3, 28, 28), lab = test::idx_labels(3);
  lab[8 + 2] = 10;
  std::string msg = error_of([&] { parse_idx(img.data(), img.size(), "a", lab.data(), lab.size(), "labels.idx", 10); });
  EXPECT_NE(msg.find("labels.idx: label 10 of entry 2 (offset 10)"), std::string::npos) << msg;
}

TEST(IdxReader, CountMismatchNamesBothFiles) {
  auto img = test::idx_images(3, 28, 28), lab = test::idx_labels(4);
  std::string msg = error_of([&] { parse_idx(img.data(), img.size(), "imgs", lab.data(), lab.size(), "labs", 10); });
  EXPECT_NE(msg.find("image count 3 in imgs does not match label count 4 in labs"), std::string::npos) << msg;
}

TEST(IdxReader, MissingFileNamesTheExpectedName) {
  test::TempDir dir;
  std::string msg = error_of([&] { open_dataset("idx", dir.str(), "train"); });
  EXPECT_NE(msg.find("train-images-idx3-ubyte"), std::string::npos) << msg;
}

TEST(FashionMnist, DebianPackageHasStandardCounts) {
  ASSERT_TRUE(std::filesystem::exists(kDefaultFashionMnistDir))
      << "install Debian's dataset-fashion-mnist (" << kDefaultFashionMnistDir << ")";
  auto train = open_dataset("fashion-mnist", "", "train");
  auto test = open_dataset("fashion-mnist", "", "test");
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->num_classes(), 10);
  EXPECT_EQ(train->height(), 28);
  EXPECT_EQ(train->width(), 28);
  EXPECT_EQ(train->class_names()[9], "Ankle boot");
  std::vector<int64_t> per_class(10);
  for (int32_t l : train->labels()) per_class[l]++;
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 6000) << "class " << c;  // Fashion-MNIST is balanced
  // The first training label of Fashion-MNIST is 9 (ankle boot), the first test label 9 as well.
  EXPECT_EQ(train->label(0), 9);
  EXPECT_EQ(test->label(0), 9);
  EXPECT_TRUE(train->hflip_makes_sense());
}

TEST(IdxReader, InflationBeyondTheLimitIsRefused) {
  auto img = test::gzip_bytes(test::idx_images(40, 28, 28)), lab = test::idx_labels(40);
  IdxLimits limits;
  limits.max_inflated_bytes = 4096;
  std::string msg = error_of(
      [&] { parse_idx(img.data(), img.size(), "bomb.gz", lab.data(), lab.size(), "labs", 10, limits); });
  EXPECT_NE(msg.find("bomb.gz: the IDX header (offset 4) describes 31376 bytes, more than the limit of 4096 bytes"),
            std::string::npos)
      << msg;
}

// A small gzip file whose IDX header claims little but whose data inflates to much more is refused after the
// claimed size, not after the general limit (before: the whole stream was inflated up to 4 GiB first).
TEST(IdxReader, GzipDataBeyondWhatTheHeaderClaimsIsRefusedAtTheClaimedSize) {
  std::vector<uint8_t> raw = test::idx_images(4, 28, 28);  // header says 4 images: 16 + 3136 bytes
  const std::vector<uint8_t> more = test::idx_images(400, 28, 28);
  raw.insert(raw.end(), more.begin() + 16, more.end());  // ... followed by 400 more images
  const auto img = test::gzip_bytes(raw);
  const auto lab = test::idx_labels(4);
  const std::string msg = error_of(
      [&] { parse_idx(img.data(), img.size(), "long.gz", lab.data(), lab.size(), "labs", 10, IdxLimits{}); });
  EXPECT_NE(msg.find("long.gz: the compressed data inflates to more than the 3152 bytes its IDX header describes"),
            std::string::npos)
      << msg;
  // A header that claims more than the limit is refused before anything is inflated past it.
  std::vector<uint8_t> huge = test::idx_images(1, 28, 28);
  huge[4] = 0x7f;  // N = 0x7f000001 images of 28x28: ~1.7 TB
  const auto hz = test::gzip_bytes(huge);
  const std::string m2 = error_of(
      [&] { parse_idx(hz.data(), hz.size(), "huge.gz", lab.data(), lab.size(), "labs", 10, IdxLimits{}); });
  EXPECT_NE(m2.find("huge.gz: the IDX header (offset 4) describes"), std::string::npos) << m2;
  EXPECT_NE(m2.find("more than the limit of 4294967296 bytes"), std::string::npos) << m2;
}

// A claim under the general limit that the compressed bytes cannot hold (deflate expands at most 1032:1) is
// refused before inflating: 1 image header-edited to claim 200,000 images (150 MB) in a ~1 KB file.
TEST(IdxReader, GzipHeaderClaimBeyondTheDeflateRatioIsRefusedBeforeInflating) {
  std::vector<uint8_t> raw = test::idx_images(1, 28, 28);
  raw[5] = 0x03, raw[6] = 0x0d, raw[7] = 0x40;  // N = 200,000
  const auto img = test::gzip_bytes(raw);
  const auto lab = test::idx_labels(1);
  const std::string msg = error_of(
      [&] { parse_idx(img.data(), img.size(), "claim.gz", lab.data(), lab.size(), "labs", 10, IdxLimits{}); });
  EXPECT_NE(msg.find("claim.gz: the IDX header (offset 4) describes 156800016 bytes, more than"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("deflate expands at most 1032:1"), std::string::npos) << msg;
}
