// .npy float32 I/O: round trips for every rank, numpy's header variants, and clear errors for what we reject.
#include "engine/npy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kernels/common/error.h"

namespace islkd {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()))).string();
}

// A hand-made .npy image with the given header dict, format version and data bytes.
std::vector<uint8_t> npy_image(const std::string& dict, int major, size_t data_bytes) {
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  const size_t len = dict.size();
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) out.push_back(static_cast<uint8_t>(len >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  for (size_t i = 0; i < data_bytes / 4; ++i) {
    const float v = static_cast<float>(i);
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    out.insert(out.end(), b, b + 4);
  }
  out.resize(out.size() + data_bytes % 4);
  return out;
}

void expect_error(const std::vector<uint8_t>& bytes, const char* part) {
  try {
    npy::parse(bytes.data(), bytes.size(), "x.npy");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x.npy"), std::string::npos) << e.what();
  }
}

TEST(NpyRoundTrip, EveryRankSurvivesWriteAndRead) {
  const std::string path = temp_path("islkd_npy.npy");
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{}, {5}, {2, 3}, {2, 1, 4, 4}, {0, 7}}) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = 0.5f * i - 3.0f;
    npy::write(path, shape, v);
    npy::Array a = npy::read(path);
    EXPECT_EQ(a.shape, shape);
    EXPECT_EQ(a.data, v);
    // numpy aligns the data on 64 bytes
    EXPECT_EQ((std::filesystem::file_size(path) - n * 4) % 64, 0u);
  }
  std::remove(path.c_str());
}

TEST(NpyLoad, Version2HeaderAndDoubleQuotesAreAccepted) {
  const std::vector<uint8_t> b =
      npy_image("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 2)}\n", 2, 16);
  npy::Array a = npy::parse(b.data(), b.size(), "v2.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{0, 1, 2, 3}));
}

TEST(NpyLoad, Float64IsAnErrorSuggestingAConversion) {
  expect_error(npy_image("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 1, 16), "astype(np.float32)");
}

TEST(NpyLoad, BigEndianIsAnError) {
  expect_error(npy_image("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 1, 8), "'>f4'");
}

TEST(NpyLoad, FortranOrderIsAnError) {
  expect_error(npy_image("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 1, 16), "Fortran");
}

TEST(NpyLoad, TruncatedDataIsAnError) {
  expect_error(npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 1, 20), "truncated");
}

TEST(NpyLoad, BadMagicIsAnError) { expect_error({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0}, "not a .npy"); }

TEST(NpyLoad, HeaderLengthPastTheEndIsAnError) {
  std::vector<uint8_t> b = npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 1, 4);
  b[8] = 0xff;
  b[9] = 0xff;
  expect_error(b, "runs past the end");
}

TEST(NpyLoad, EveryTruncationIsAnErrorNotACrash) {
  const std::vector<uint8_t> full = npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 1, 12);
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    EXPECT_THROW(npy::parse(cut.data(), cut.size(), "cut.npy"), Error) << n;
  }
}

}  // namespace
}  // namespace islkd
