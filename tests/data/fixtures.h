// Helpers for the data tests: a temporary directory per test, byte writers for the on-disk formats, and the
// pixel/label formula shared with make_fixtures.py (so independently written files can be checked value by value).
#pragma once
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace islkd::test {

// pixel(n, c, h, w) and label(n): the same formulas as tests/data/make_fixtures.py.
inline uint8_t fixture_pixel(int64_t n, int64_t c, int64_t h, int64_t w) {
  return static_cast<uint8_t>((n * 37 + c * 101 + h * 7 + w * 3 + h * w) % 256);
}
inline int32_t fixture_label(int64_t n, int classes) { return static_cast<int32_t>((n * 7 + 3) % classes); }

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("islkd_data_test_" + std::to_string(rd()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

inline std::vector<uint8_t> gzip_bytes(const std::vector<uint8_t>& raw) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 8, Z_DEFAULT_STRATEGY);
  std::vector<uint8_t> out(deflateBound(&zs, raw.size()) + 32);
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

inline std::vector<uint8_t> zlib_bytes(const std::vector<uint8_t>& raw) {
  uLongf n = compressBound(raw.size());
  std::vector<uint8_t> out(n);
  compress(out.data(), &n, raw.data(), raw.size());
  out.resize(n);
  return out;
}

inline void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}
inline void put_le32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 0; s < 32; s += 8) v.push_back(static_cast<uint8_t>(x >> s));
}

// IDX image and label files of n fixture instances of h x w.
inline std::vector<uint8_t> idx_images(int64_t n, int h, int w) {
  std::vector<uint8_t> v = {0, 0, 8, 3};
  put_be32(v, static_cast<uint32_t>(n));
  put_be32(v, static_cast<uint32_t>(h));
  put_be32(v, static_cast<uint32_t>(w));
  for (int64_t i = 0; i < n; ++i)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) v.push_back(fixture_pixel(i, 0, y, x));
  return v;
}
inline std::vector<uint8_t> idx_labels(int64_t n, int classes = 10) {
  std::vector<uint8_t> v = {0, 0, 8, 1};
  put_be32(v, static_cast<uint32_t>(n));
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<uint8_t>(fixture_label(i, classes)));
  return v;
}

// CIFAR binary records: label byte(s) then 3 x 32 x 32 pixels. For CIFAR-100 the coarse label is label % 20.
inline std::vector<uint8_t> cifar_records(int64_t first, int64_t n, bool hundred) {
  std::vector<uint8_t> v;
  for (int64_t i = first; i < first + n; ++i) {
    if (hundred) {
      v.push_back(static_cast<uint8_t>(fixture_label(i, 100) % 20));
      v.push_back(static_cast<uint8_t>(fixture_label(i, 100)));
    } else {
      v.push_back(static_cast<uint8_t>(fixture_label(i, 10)));
    }
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) v.push_back(fixture_pixel(i, c, y, x));
  }
  return v;
}

}  // namespace islkd::test
