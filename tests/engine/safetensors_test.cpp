// safetensors: round trips, and every class of malformed file rejected with an Error that names the problem.
#include "engine/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "kernels/common/error.h"

namespace islkd {
namespace {

namespace st = safetensors;

// A raw file image: 8-byte little-endian header length, header text, data bytes.
std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes, uint64_t declared_len = UINT64_MAX) {
  const uint64_t len = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}

// Parses and expects an islkd::Error whose message contains every one of `parts`.
void expect_error(const std::vector<uint8_t>& bytes, std::initializer_list<const char*> parts) {
  try {
    st::parse(bytes.data(), bytes.size(), "test.safetensors");
    ADD_FAILURE() << "parse accepted a malformed file";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("test.safetensors"), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

st::File sample_file() {
  st::File f;
  f.add(st::Entry::from_f32("conv1.weight", {2, 1, 3, 3}, std::vector<float>(18)));
  for (int i = 0; i < 18; ++i) f.entries.back().f32[i] = 0.25f * i - 1.0f;
  f.add(st::Entry::from_f32("bn1.running_var", {2}, {1.5f, -0.0f}));
  f.add(st::Entry::from_i64("bn1.num_batches_tracked", {}, {int64_t(1) << 40}));
  f.add(st::Entry::from_f32("empty", {0, 3}, {}));
  f.metadata = {{"epoch", "7"}, {"config", "{\"lr\": 0.05}"}};
  return f;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()))).string();
}

TEST(SafetensorsRoundTrip, F32I64ScalarsEmptyTensorsAndMetadataSurvive) {
  const st::File f = sample_file();
  const std::vector<uint8_t> bytes = st::serialize(f);
  const st::File g = st::parse(bytes.data(), bytes.size(), "mem");
  ASSERT_EQ(g.entries.size(), f.entries.size());
  for (size_t i = 0; i < f.entries.size(); ++i) {
    const st::Entry* e = g.find(f.entries[i].name);
    ASSERT_NE(e, nullptr) << f.entries[i].name;
    EXPECT_EQ(e->dtype, f.entries[i].dtype);
    EXPECT_EQ(e->shape, f.entries[i].shape);
    EXPECT_EQ(e->f32, f.entries[i].f32);
    EXPECT_EQ(e->i64, f.entries[i].i64);
  }
  EXPECT_TRUE(std::signbit(g.find("bn1.running_var")->f32[1]));  // bit-exact, -0 included
  EXPECT_EQ(g.metadata, f.metadata);
}

TEST(SafetensorsRoundTrip, HeaderIsPaddedSoDataIsEightByteAligned) {
  const std::vector<uint8_t> bytes = st::serialize(sample_file());
  uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  EXPECT_EQ(len % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
}

TEST(SafetensorsRoundTrip, SaveIsAtomicAndLeavesNoTemporaryFile) {
  const std::string path = temp_path("islkd_st_roundtrip.safetensors");
  st::save(path, sample_file());
  st::save(path, sample_file());  // overwriting an existing file works too
  const st::File g = st::load(path);
  EXPECT_EQ(g.find("bn1.num_batches_tracked")->i64[0], int64_t(1) << 40);
  const std::string dir = std::filesystem::path(path).parent_path().string();
  for (auto& p : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(p.path().string().find(path + ".tmp"), std::string::npos) << p.path();
  std::remove(path.c_str());
}

TEST(SafetensorsSave, UnwritableDirectoryIsAnErrorNamingThePath) {
  try {
    st::save("/nonexistent-dir/x.safetensors", sample_file());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsSave, DuplicateNamesAreRejected) {
  st::File f = sample_file();
  f.entries.push_back(f.entries[0]);
  EXPECT_THROW(st::serialize(f), Error);
}

TEST(SafetensorsLoad, MissingFileIsAnErrorNamingThePath) {
  try {
    st::load("/nonexistent-dir/w.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/w.safetensors"), std::string::npos);
  }
}

TEST(SafetensorsLoad, TruncatedHeaderIsAnError) {
  expect_error({0x10, 0, 0}, {"too short"});
}

TEST(SafetensorsLoad, HeaderLengthBeyondFileIsAnError) {
  expect_error(raw_file("{}", 0, 1000), {"header length 1000", "exceeds"});
}

TEST(SafetensorsLoad, HugeHeaderLengthIsAnError) {
  expect_error(raw_file("{}", 0, UINT64_MAX - 1), {"exceeds"});
}

TEST(SafetensorsLoad, BadJsonIsAnError) {
  expect_error(raw_file("{\"a\": {\"dtype\": \"F32\",", 0), {"JSON", "does not parse"});
}

TEST(SafetensorsLoad, HeaderThatIsNotAnObjectIsAnError) {
  expect_error(raw_file("[1, 2]", 0), {"does not start with '{'"});
}

TEST(SafetensorsLoad, UnknownDtypeIsAnError) {
  expect_error(raw_file(R"({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})", 4),
               {"tensor 'w'", "unknown dtype 'Q7'"});
}

TEST(SafetensorsLoad, UnsupportedDtypeIsAnErrorNamingIt) {
  expect_error(raw_file(R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4),
               {"tensor 'w'", "F16", "not supported"});
}

TEST(SafetensorsLoad, ShapeOffsetMismatchIsAnError) {
  expect_error(raw_file(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 20),
               {"tensor 'w'", "needs 24 bytes", "span 20"});
}

TEST(SafetensorsLoad, OffsetsOutsideTheFileAreAnError) {
  expect_error(raw_file(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8),
               {"tensor 'w'", "outside the data section"});
}

TEST(SafetensorsLoad, OverflowingShapeIsAnError) {
  expect_error(raw_file(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0),
               {"tensor 'w'", "overflows"});
}

TEST(SafetensorsLoad, NegativeShapeIsAnError) {
  expect_error(raw_file(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
               {"tensor 'w'", "non-negative"});
}

TEST(SafetensorsLoad, ReversedOffsetsAreAnError) {
  expect_error(raw_file(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}})", 4),
               {"tensor 'w'", "end before they begin"});
}

TEST(SafetensorsLoad, OverlappingRangesAreAnError) {
  expect_error(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                        12),
               {"tensor 'b'", "overlap"});
}

TEST(SafetensorsLoad, HoleInTheDataSectionIsAnError) {
  expect_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                        12),
               {"tensor 'b'", "hole"});
}

TEST(SafetensorsLoad, TrailingBytesAreAnError) {
  expect_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8), {"cover only 4"});
}

TEST(SafetensorsLoad, DuplicateNameIsAnError) {
  expect_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                            "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                        8),
               {"tensor 'a'", "twice"});
}

TEST(SafetensorsLoad, MissingFieldIsAnError) {
  expect_error(raw_file(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), {"tensor 'a'", "'shape'"});
}

TEST(SafetensorsLoad, NonStringMetadataIsAnError) {
  expect_error(raw_file(R"({"__metadata__": {"epoch": 3}})", 0), {"__metadata__", "epoch"});
}

TEST(SafetensorsLoad, DeeplyNestedJsonIsAnErrorNotAStackOverflow) {
  const std::string header = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  expect_error(raw_file(header, 0), {"tensor 'a'", "not an object"});
}

TEST(SafetensorsLoad, EveryTruncationIsAnErrorNotACrash) {
  const std::vector<uint8_t> bytes = st::serialize(sample_file());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);  // own allocation: ASan sees any over-read
    EXPECT_THROW(st::parse(cut.data(), cut.size(), "cut"), Error) << "truncated to " << n << " bytes";
  }
}

TEST(SafetensorsLoad, RandomByteCorruptionIsRejectedOrParsedNeverACrash) {
  const std::vector<uint8_t> bytes = st::serialize(sample_file());
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> bad = bytes;
    const int flips = 1 + trial % 4;
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    try {
      st::File f = st::parse(bad.data(), bad.size(), "fuzz");
      for (const auto& e : f.entries) EXPECT_EQ(int64_t(e.f32.size() + e.i64.size()), e.numel());
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace islkd
