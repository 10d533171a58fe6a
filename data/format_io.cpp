// File reading and zlib/gzip inflation shared by the binary format parsers (bounded, so bad input cannot
// exhaust memory).
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "data/formats.h"
#include "kernels/common/error.h"
#include "kernels/common/regular_file.h"

namespace islkd::data {

std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes) {
  return read_regular_file(path, max_bytes, "dataset file");
}

bool is_gzip(const uint8_t* data, size_t size) { return size >= 2 && data[0] == 0x1f && data[1] == 0x8b; }

namespace {
// prefix: stop quietly once max_out bytes are out (inflate_prefix) instead of refusing the stream (inflate_all).
std::vector<uint8_t> inflate_up_to(const uint8_t* data, size_t size, size_t max_out, const std::string& name,
                                   bool prefix) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  // 15 + 32: maximum window, and detect a zlib or gzip header automatically.
  ISLKD_CHECK(inflateInit2(&zs, 15 + 32) == Z_OK, name, ": zlib initialisation failed");
  std::vector<uint8_t> out;
  size_t consumed = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out.size() == max_out) {
      inflateEnd(&zs);
      if (prefix) return out;
      ISLKD_FAIL(name, ": inflated data exceeds the limit of ", max_out, " bytes (at compressed offset ", consumed,
                 ")");
    }
    size_t grow = std::min(max_out - out.size(), std::max<size_t>(out.size(), size_t(1) << 16));
    size_t old = out.size();
    out.resize(old + grow);
    size_t remaining_in = size - consumed;
    zs.next_in = const_cast<Bytef*>(data + consumed);
    zs.avail_in = static_cast<uInt>(std::min<size_t>(remaining_in, 1u << 30));
    zs.next_out = out.data() + old;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(grow, 1u << 30));
    uInt avail_in_before = zs.avail_in, avail_out_before = zs.avail_out;
    rc = inflate(&zs, Z_NO_FLUSH);
    consumed += avail_in_before - zs.avail_in;
    out.resize(old + (avail_out_before - zs.avail_out));
    if (rc == Z_STREAM_END) break;
    bool no_progress = avail_in_before == zs.avail_in && avail_out_before == zs.avail_out;
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || (no_progress && consumed == size)) {
      std::string why = zs.msg ? zs.msg : (consumed == size ? "unexpected end of input" : "error");
      inflateEnd(&zs);
      ISLKD_FAIL(name, ": corrupt or truncated compressed data at compressed offset ", consumed, " (zlib: ", why,
                 ")");
    }
  }
  inflateEnd(&zs);
  return out;
}

}  // namespace

std::vector<uint8_t> inflate_all(const uint8_t* data, size_t size, size_t max_out, const std::string& name) {
  return inflate_up_to(data, size, max_out, name, false);
}

std::vector<uint8_t> inflate_prefix(const uint8_t* data, size_t size, size_t n, const std::string& name) {
  return inflate_up_to(data, size, n, name, true);
}

}  // namespace islkd::data
