// SVHN MAT reader against MAT files written here (level 5, plain and miCOMPRESSED, labels of several numeric
// classes, small data elements), and malformed files.
#include <cstring>
#include <functional>

#include "data/dataset.h"
#include "data/formats.h"
#include "kernels/common/error.h"
#include "tests/common/test_util.h"
#include "tests/data/fixtures.h"

using namespace islkd;
using namespace islkd::data;

namespace {

enum : uint32_t { miINT8 = 1, miUINT8 = 2, miINT16 = 3, miINT32 = 5, miUINT32 = 6, miDOUBLE = 9, miMATRIX = 14,
                  miCOMPRESSED = 15 };
enum : uint32_t { mxDOUBLE = 6, mxUINT8 = 9, mxINT16 = 10 };

std::vector<uint8_t> element(uint32_t type, const std::vector<uint8_t>& data, bool small_ok = true) {
  std::vector<uint8_t> v;
  if (small_ok && data.size() <= 4) {  // small data element: size and type share the first 4 bytes
    test::put_le32(v, (static_cast<uint32_t>(data.size()) << 16) | type);
    v.insert(v.end(), data.begin(), data.end());
    v.resize(8, 0);
    return v;
  }
  test::put_le32(v, type);
  test::put_le32(v, static_cast<uint32_t>(data.size()));
  v.insert(v.end(), data.begin(), data.end());
  while (v.size() % 8) v.push_back(0);
  return v;
}

std::vector<uint8_t> matrix(const std::string& name, uint32_t mx_class, const std::vector<int32_t>& dims,
                            uint32_t mi_type, const std::vector<uint8_t>& real) {
  std::vector<uint8_t> flags, d, body;
  test::put_le32(flags, mx_class);
  test::put_le32(flags, 0);
  for (int32_t x : dims) test::put_le32(d, static_cast<uint32_t>(x));
  auto add = [&](const std::vector<uint8_t>& e) { body.insert(body.end(), e.begin(), e.end()); };
  add(element(miUINT32, flags, false));
  add(element(miINT32, d, false));
  add(element(miINT8, std::vector<uint8_t>(name.begin(), name.end())));
  add(element(mi_type, real));
  return element(miMATRIX, body, false);
}

std::vector<uint8_t> compressed(const std::vector<uint8_t>& elem) {
  std::vector<uint8_t> z = test::zlib_bytes(elem), v;
  test::put_le32(v, miCOMPRESSED);
  test::put_le32(v, static_cast<uint32_t>(z.size()));
  v.insert(v.end(), z.begin(), z.end());  // no padding after compressed data
  return v;
}

std::vector<uint8_t> header() {
  std::vector<uint8_t> h(128, ' ');
  const char* text = "MATLAB 5.0 MAT-file, written by islkd's tests";
  std::memcpy(h.data(), text, std::strlen(text));
  std::memset(h.data() + 116, 0, 8);
  h[124] = 0x00, h[125] = 0x01, h[126] = 'I', h[127] = 'M';
  return h;
}

// X (32x32x3xN, column-major) of fixture pixels.
std::vector<uint8_t> x_var(int64_t n) {
  std::vector<uint8_t> data(static_cast<size_t>(n * 3072));
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c)
      for (int w = 0; w < 32; ++w)
        for (int h = 0; h < 32; ++h) data[h + 32 * (w + 32 * (c + 3 * i))] = test::fixture_pixel(i, c, h, w);
  std::vector<int32_t> dims = {32, 32, 3, static_cast<int32_t>(n)};
  if (n == 1) dims.pop_back();  // MATLAB drops trailing singleton dimensions
  return matrix("X", mxUINT8, dims, miUINT8, data);
}

int svhn_label(int64_t i) {
  int d = test::fixture_label(i, 10);
  return d == 0 ? 10 : d;
}

std::vector<uint8_t> y_double(int64_t n, double bad_at = -1, double bad_value = 0) {
  std::vector<uint8_t> data;
  for (int64_t i = 0; i < n; ++i) {
    double v = i == bad_at ? bad_value : svhn_label(i);
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    data.insert(data.end(), b, b + 8);
  }
  return matrix("y", mxDOUBLE, {static_cast<int32_t>(n), 1}, miDOUBLE, data);
}

std::vector<uint8_t> y_int16(int64_t n) {
  std::vector<uint8_t> data;
  for (int64_t i = 0; i < n; ++i) {
    data.push_back(static_cast<uint8_t>(svhn_label(i)));
    data.push_back(0);
  }
  return matrix("y", mxINT16, {static_cast<int32_t>(n), 1}, miINT16, data);
}

std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> v;
  for (const auto& p : parts) v.insert(v.end(), p.begin(), p.end());
  return v;
}

void expect_fixture(const RawImages& r, int64_t n) {
  ASSERT_EQ(r.n, n);
  ASSERT_EQ(r.c, 3);
  ASSERT_EQ(r.h, 32);
  ASSERT_EQ(r.w, 32);
  ASSERT_EQ(r.labels.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(r.labels[i], test::fixture_label(i, 10)) << "label 10 means digit 0";
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          ASSERT_EQ(r.pixels[((i * 3 + c) * 32 + y) * 32 + x], test::fixture_pixel(i, c, y, x))
              << "instance " << i << " c " << c << " y " << y << " x " << x;
  }
}

using test::error_of;

RawImages parse(const std::vector<uint8_t>& b) { return parse_svhn_mat(b.data(), b.size(), "svhn.mat"); }

}  // namespace

TEST(SvhnMatReader, UncompressedElementsReadValueByValue) {
  expect_fixture(parse(cat({header(), x_var(5), y_double(5)})), 5);
}

TEST(SvhnMatReader, CompressedElementsReadValueByValue) {
  expect_fixture(parse(cat({header(), compressed(y_int16(4)), compressed(x_var(4))})), 4);
}

TEST(SvhnMatReader, OtherVariablesAreSkippedAndSingleImageHasThreeDims) {
  std::vector<uint8_t> junk = matrix("note", mxDOUBLE, {1, 2}, miDOUBLE, std::vector<uint8_t>(16, 0));
  expect_fixture(parse(cat({header(), compressed(junk), x_var(1), junk, y_double(1)})), 1);
}

TEST(SvhnMatReader, OpensThroughTheDatasetFactory) {
  test::TempDir dir;
  test::write_bytes(dir / "test_32x32.mat", cat({header(), compressed(x_var(3)), compressed(y_double(3))}));
  auto ds = open_dataset("svhn", dir.str(), "test");
  EXPECT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->num_classes(), 10);
  EXPECT_FALSE(ds->hflip_makes_sense()) << "digits are not flipped";
  EXPECT_EQ(ds->normalization().name, "svhn");
}

TEST(SvhnMatReader, TruncatedFileNamesTheOffset) {
  auto b = cat({header(), x_var(2), y_double(2)});
  b.resize(128 + 100);
  std::string msg = error_of([&] { parse(b); });
  EXPECT_NE(msg.find("svhn.mat: offset 128: data element of type 14 claims"), std::string::npos) << msg;
  b.resize(100);
  EXPECT_NE(error_of([&] { parse(b); }).find("truncated MAT file"), std::string::npos);
}

TEST(SvhnMatReader, TruncatedCompressedElementIsAnError) {
  auto c = compressed(x_var(2));
  // Keep the tag's size honest but cut the zlib stream short.
  std::vector<uint8_t> z(c.begin() + 8, c.begin() + 8 + (c.size() - 8) / 2), e;
  test::put_le32(e, miCOMPRESSED);
  test::put_le32(e, static_cast<uint32_t>(z.size()));
  e.insert(e.end(), z.begin(), z.end());
  std::string msg = error_of([&] { parse(cat({header(), e})); });
  EXPECT_NE(msg.find("svhn.mat: compressed element at offset 128 is truncated"), std::string::npos) << msg;
}

TEST(SvhnMatReader, WrongHeaderIsAnError) {
  auto b = cat({header(), x_var(1), y_double(1)});
  b[126] = 'X';
  EXPECT_NE(error_of([&] { parse(b); }).find("endian indicator"), std::string::npos);
  b[126] = 'I';
  b[125] = 0x02;  // v7.3
  EXPECT_NE(error_of([&] { parse(b); }).find("v7.3"), std::string::npos);
  std::memset(b.data(), 0, 4);
  EXPECT_NE(error_of([&] { parse(b); }).find("level-4"), std::string::npos);
}

TEST(SvhnMatReader, LabelOutOfRangeNamesTheEntry) {
  std::string msg = error_of([&] { parse(cat({header(), x_var(3), y_double(3, 1, 11)})); });
  EXPECT_NE(msg.find("label 11 of entry 1 of 'y' is out of range"), std::string::npos) << msg;
  msg = error_of([&] { parse(cat({header(), x_var(3), y_double(3, 2, 0)})); });
  EXPECT_NE(msg.find("label 0 of entry 2"), std::string::npos) << msg;
  msg = error_of([&] { parse(cat({header(), x_var(3), y_double(3, 0, 2.5)})); });
  EXPECT_NE(msg.find("label 2.5 of entry 0"), std::string::npos) << msg;
}

TEST(SvhnMatReader, ImageAndLabelCountMismatchIsAnError) {
  std::string msg = error_of([&] { parse(cat({header(), x_var(3), y_double(4)})); });
  EXPECT_NE(msg.find("svhn.mat: 'X' holds 3 images but 'y' holds 4 labels"), std::string::npos) << msg;
}

TEST(SvhnMatReader, MissingVariableOrWrongClassIsAnError) {
  EXPECT_NE(error_of([&] { parse(cat({header(), x_var(2)})); }).find("no variable 'y'"), std::string::npos);
  auto x_double = matrix("X", mxDOUBLE, {32, 32, 3, 1}, miDOUBLE, std::vector<uint8_t>(3072 * 8, 0));
  EXPECT_NE(error_of([&] { parse(cat({header(), x_double, y_double(1)})); }).find("SVHN images are uint8"),
            std::string::npos);
  auto x_short = matrix("X", mxUINT8, {32, 32, 3, 2}, miUINT8, std::vector<uint8_t>(3072, 0));
  EXPECT_NE(error_of([&] { parse(cat({header(), x_short, y_double(2)})); }).find("holds 3072 values"),
            std::string::npos);
}

TEST(SvhnMatReader, HostileInflatedSizeIsRefusedBeforeAllocating) {
  // A compressed element whose inner tag claims 4 GiB.
  std::vector<uint8_t> inner;
  test::put_le32(inner, miMATRIX);
  test::put_le32(inner, 0xfffffff0u);
  inner.resize(64, 0);
  auto b = cat({header(), compressed(inner)});
  MatLimits limits;
  limits.max_inflated_bytes = 1 << 20;
  std::string msg = error_of([&] { parse_svhn_mat(b.data(), b.size(), "big.mat", limits); });
  EXPECT_NE(msg.find("over the limit"), std::string::npos) << msg;
}

// The 152-byte file: a compressed element whose inner tag claims ~4 GiB, under the default limits. It is
// refused by the deflate ratio before the buffer is allocated (it used to zero-fill 4 GiB first).
TEST(SvhnMatReader, InflatedClaimBeyondTheDeflateRatioIsRefusedBeforeAllocating) {
  std::vector<uint8_t> inner;
  test::put_le32(inner, miMATRIX);
  test::put_le32(inner, 0xfffffff0u);
  inner.resize(64, 0);
  auto b = cat({header(), compressed(inner)});
  std::string msg = error_of([&] { parse_svhn_mat(b.data(), b.size(), "claim.mat"); });
  EXPECT_NE(msg.find("compressed bytes can hold (deflate expands at most 1032:1)"), std::string::npos) << msg;
}
