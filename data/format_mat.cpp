// MATLAB level-5 MAT reader for exactly what the SVHN cropped-digits files hold: a uint8 array X (H x W x 3 x N)
// and a numeric label vector y (N x 1, 1..10 with 10 meaning digit 0), each element possibly miCOMPRESSED.
// Spec: MathWorks "MAT-File Format" (level 5). Every read is bounds-checked against its enclosing element.
// Not Debian's libmatio: it opens files by path (no parse from memory, so the fuzzers and the size-before-
// allocation limits of README's Reliability could not wrap it) and reads all of MAT for the two arrays SVHN needs.
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "data/formats.h"
#include "kernels/common/checked.h"
#include "kernels/common/error.h"

namespace islkd::data {
namespace {

enum MiType : uint32_t {
  miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7, miDOUBLE = 9,
  miINT64 = 12, miUINT64 = 13, miMATRIX = 14, miCOMPRESSED = 15,
};
enum MxClass : uint32_t { mxUINT8 = 9 };
constexpr uint32_t kComplexFlag = 0x0800;

int numeric_size(uint32_t type) {
  switch (type) {
    case miINT8: case miUINT8: return 1;
    case miINT16: case miUINT16: return 2;
    case miINT32: case miUINT32: case miSINGLE: return 4;
    case miDOUBLE: case miINT64: case miUINT64: return 8;
    default: return 0;
  }
}

// A region of bytes (the file, or one inflated element) and how to name positions in it in errors.
struct Region {
  const uint8_t* data;
  size_t size;
  size_t file_offset;  // where the region's bytes (or its compressed source) start in the file
  bool inflated;
};

struct Tag {
  uint32_t type = 0;
  uint32_t nbytes = 0;
  size_t data_pos = 0;  // within the region
  size_t next_pos = 0;
};

class MatParser {
 public:
  MatParser(const uint8_t* data, size_t size, std::string name, const MatLimits& limits)
      : file_{data, size, 0, false}, name_(std::move(name)), limits_(limits) {}

  RawImages parse() {
    parse_header();
    size_t pos = 128;
    while (pos < file_.size) {
      Tag t = read_tag(file_, pos, /*top_level=*/true);
      if (t.type == miCOMPRESSED) {
        std::vector<uint8_t> inflated = inflate_element(t, pos);
        Region r{inflated.data(), inflated.size(), pos, true};
        Tag inner = read_tag(r, 0, true);
        ISLKD_CHECK(inner.type == miMATRIX, where(r, 0), ": compressed element holds data type ", inner.type,
                    ", expected a matrix (14)");
        parse_matrix(r, inner);
      } else if (t.type == miMATRIX) {
        parse_matrix(file_, t);
      } else {
        ISLKD_FAIL(where(file_, pos), ": top-level data element of type ", t.type,
                   " (a MAT file's variables are matrix (14) or compressed (15) elements)");
      }
      pos = t.next_pos;
    }
    ISLKD_CHECK(have_x_, name_, ": no variable 'X' (the SVHN images) in this MAT file");
    ISLKD_CHECK(have_y_, name_, ": no variable 'y' (the SVHN labels) in this MAT file");
    ISLKD_CHECK(static_cast<int64_t>(out_.labels.size()) == out_.n, name_, ": 'X' holds ", out_.n,
                " images but 'y' holds ", out_.labels.size(), " labels");
    return std::move(out_);
  }

 private:
  std::string where(const Region& r, size_t pos) const {
    if (!r.inflated) return detail::concat(name_, ": offset ", pos);
    return detail::concat(name_, ": byte ", pos, " of the element inflated from offset ", r.file_offset);
  }

  uint64_t load(const uint8_t* p, int bytes) const {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      int shift = little_ ? 8 * i : 8 * (bytes - 1 - i);
      v |= uint64_t(p[i]) << shift;
    }
    return v;
  }
  uint32_t u32(const uint8_t* p) const { return static_cast<uint32_t>(load(p, 4)); }

  void parse_header() {
    const uint8_t* d = file_.data;
    ISLKD_CHECK(file_.size >= 128, name_, ": truncated MAT file (", file_.size,
                " bytes; a level-5 MAT header alone is 128)");
    ISLKD_CHECK(!(d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0), name_,
                ": this is a MATLAB level-4 (or not a MAT) file; SVHN files are level 5");
    if (d[126] == 'I' && d[127] == 'M')
      little_ = true;
    else if (d[126] == 'M' && d[127] == 'I')
      little_ = false;
    else
      ISLKD_FAIL(name_, ": no MAT endian indicator ('IM' or 'MI') at offset 126: not a MATLAB level-5 MAT file");
    const uint32_t version = static_cast<uint32_t>(load(d + 124, 2));
    ISLKD_CHECK(version != 0x0200, name_,
                ": MATLAB v7.3 (HDF5) MAT file; save it with -v7 (or scipy.io.savemat) to read it here");
    ISLKD_CHECK(version == 0x0100, name_, ": MAT version 0x", std::hex, version, std::dec,
                " at offset 124 (expected 0x0100, level 5)");
  }

  // Reads the tag at pos. Small data elements pack type and size into 4 bytes and their data into the next 4.
  // Element payloads are padded to 8 bytes except a compressed element's; a top-level element may end the
  // file without its padding.
  Tag read_tag(const Region& r, size_t pos, bool top_level) const {
    ISLKD_CHECK(pos <= r.size && r.size - pos >= 8, where(r, pos), ": truncated data element tag (",
                r.size - std::min(pos, r.size), " bytes left, a tag needs 8)");
    Tag t;
    const uint32_t first = u32(r.data + pos);
    if ((first >> 16) != 0) {
      t.type = first & 0xffff;
      t.nbytes = first >> 16;
      ISLKD_CHECK(t.nbytes <= 4, where(r, pos), ": small data element claims ", t.nbytes, " bytes (at most 4)");
      t.data_pos = pos + 4;
      t.next_pos = pos + 8;
      return t;
    }
    t.type = first;
    t.nbytes = u32(r.data + pos + 4);
    t.data_pos = pos + 8;
    ISLKD_CHECK(t.nbytes <= r.size - t.data_pos, where(r, pos), ": data element of type ", t.type, " claims ",
                t.nbytes, " bytes but only ", r.size - t.data_pos, " remain (truncated file?)");
    // Padding is relative to the element (an element may follow unpadded compressed data at any offset).
    size_t end = t.data_pos + (t.type == miCOMPRESSED ? size_t(t.nbytes) : (size_t(t.nbytes) + 7) / 8 * 8);
    t.next_pos = top_level ? std::min(end, r.size) : end;
    return t;
  }

  std::vector<uint8_t> inflate_element(const Tag& t, size_t pos) {
    z_stream zs;
    std::memset(&zs, 0, sizeof zs);
    ISLKD_CHECK(inflateInit(&zs) == Z_OK, name_, ": zlib initialisation failed");
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
    zs.next_in = const_cast<Bytef*>(file_.data + t.data_pos);
    zs.avail_in = t.nbytes;
    auto pull = [&](uint8_t* dst, size_t n) {
      // Inflates exactly n bytes into dst (in chunks: zlib counts are 32-bit).
      while (n > 0) {
        uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
        zs.next_out = dst;
        zs.avail_out = chunk;
        int rc = inflate(&zs, Z_NO_FLUSH);
        size_t got = chunk - zs.avail_out;
        dst += got;
        n -= got;
        if (n == 0) break;
        ISLKD_CHECK(rc == Z_OK && got > 0, name_, ": compressed element at offset ", pos, " is ",
                    rc == Z_STREAM_END || rc == Z_BUF_ERROR ? "truncated" : "corrupt", " (zlib: ",
                    zs.msg ? zs.msg : "stream ended early", ")");
      }
    };
    uint8_t tag[8];
    pull(tag, 8);
    Region tag_region{tag, 8, pos, true};
    const uint32_t first = u32(tag);
    size_t payload = (first >> 16) != 0 ? 0 : size_t(u32(tag + 4));
    ISLKD_CHECK(payload <= limits_.max_inflated_bytes, where(tag_region, 0), ": inflated element claims ", payload,
                " bytes, over the limit of ", limits_.max_inflated_bytes);
    // Deflate expands at most 1032:1 (RFC 1951: a 258-byte match per ~2 bits), so a claim beyond that is a lie,
    // refused before the buffer is allocated (a 152-byte element claiming 4 GiB used to zero-fill 4 GiB first).
    ISLKD_CHECK(payload <= kMaxDeflateRatio * size_t(t.nbytes), where(tag_region, 0), ": inflated element claims ",
                payload, " bytes, more than its ", t.nbytes, " compressed bytes can hold (deflate expands at most ",
                kMaxDeflateRatio, ":1); corrupt or hostile file");
    std::vector<uint8_t> out(8 + payload);
    std::memcpy(out.data(), tag, 8);
    pull(out.data() + 8, payload);
    return out;
  }

  void parse_matrix(const Region& r, const Tag& m) {
    const size_t end = m.data_pos + m.nbytes;
    Region sub{r.data, end, r.file_offset, r.inflated};  // sub-elements may not run past the matrix
    size_t pos = m.data_pos;
    if (m.nbytes == 0) return;  // an empty matrix element (allowed by the format)

    Tag flags = read_tag(sub, pos, false);
    ISLKD_CHECK(flags.type == miUINT32 && flags.nbytes == 8, where(sub, pos),
                ": array flags sub-element has type ", flags.type, " and ", flags.nbytes,
                " bytes (expected uint32, 8 bytes)");
    const uint32_t flag_word = u32(sub.data + flags.data_pos);
    const uint32_t mx_class = flag_word & 0xff;
    const bool complex = (flag_word & kComplexFlag) != 0;
    pos = flags.next_pos;

    Tag dims_tag = read_tag(sub, pos, false);
    ISLKD_CHECK(dims_tag.type == miINT32 && dims_tag.nbytes % 4 == 0 && dims_tag.nbytes >= 8, where(sub, pos),
                ": dimensions sub-element has type ", dims_tag.type, " and ", dims_tag.nbytes,
                " bytes (expected int32, at least 2 dimensions)");
    std::vector<int64_t> dims;
    for (uint32_t i = 0; i < dims_tag.nbytes / 4; ++i) {
      int32_t d = static_cast<int32_t>(u32(sub.data + dims_tag.data_pos + 4 * i));
      ISLKD_CHECK(d >= 0, where(sub, dims_tag.data_pos + 4 * i), ": negative dimension ", d);
      dims.push_back(d);
    }
    pos = dims_tag.next_pos;

    Tag name_tag = read_tag(sub, pos, false);
    ISLKD_CHECK(name_tag.type == miINT8, where(sub, pos), ": array name sub-element has type ", name_tag.type,
                " (expected int8)");
    std::string var(reinterpret_cast<const char*>(sub.data + name_tag.data_pos), name_tag.nbytes);
    pos = name_tag.next_pos;

    if (var != "X" && var != "y") return;  // other variables are not ours to interpret
    ISLKD_CHECK(mx_class >= 6 && mx_class <= 15, where(r, m.data_pos), ": variable '", var, "' has MATLAB class ",
                mx_class, "; a numeric array is expected");
    ISLKD_CHECK(!complex, where(r, m.data_pos), ": variable '", var, "' is complex");
    Tag real = read_tag(sub, pos, false);
    const int esize = numeric_size(real.type);
    ISLKD_CHECK(esize > 0, where(sub, pos), ": data of '", var, "' has non-numeric type ", real.type);
    ISLKD_CHECK(real.nbytes % esize == 0, where(sub, pos), ": data of '", var, "' is ", real.nbytes,
                " bytes, not a multiple of its element size ", esize);
    const uint64_t count = real.nbytes / esize;
    const Numbers nums{this, sub.data + real.data_pos, real.type, esize};
    if (var == "X")
      take_images(sub, pos, mx_class, dims, nums, count);
    else
      take_labels(sub, pos, dims, nums, count);
  }

  struct Numbers {
    const MatParser* p;
    const uint8_t* data;
    uint32_t type;
    int esize;
    double at(uint64_t i) const {
      uint64_t raw = p->load(data + i * esize, esize);
      switch (type) {
        case miINT8: return static_cast<int8_t>(raw);
        case miUINT8: return static_cast<uint8_t>(raw);
        case miINT16: return static_cast<int16_t>(raw);
        case miUINT16: return static_cast<uint16_t>(raw);
        case miINT32: return static_cast<int32_t>(raw);
        case miUINT32: return static_cast<uint32_t>(raw);
        case miINT64: return static_cast<double>(static_cast<int64_t>(raw));
        case miUINT64: return static_cast<double>(raw);
        case miSINGLE: {
          uint32_t b = static_cast<uint32_t>(raw);
          float f;
          std::memcpy(&f, &b, 4);
          return f;
        }
        default: {
          double d;
          std::memcpy(&d, &raw, 8);
          return d;
        }
      }
    }
  };

  void take_images(const Region& r, size_t pos, uint32_t mx_class, const std::vector<int64_t>& dims,
                   const Numbers& nums, uint64_t count) {
    ISLKD_CHECK(!have_x_, where(r, pos), ": a second variable 'X'");
    ISLKD_CHECK(mx_class == mxUINT8, where(r, pos), ": 'X' has MATLAB class ", mx_class,
                "; SVHN images are uint8 (class 9)");
    // MATLAB drops trailing singleton dimensions: a single image is H x W x 3.
    ISLKD_CHECK((dims.size() == 4 || dims.size() == 3) && dims[2] == 3, where(r, pos), ": 'X' has ", dims.size(),
                " dimensions with ", dims.size() >= 3 ? dims[2] : 0, " channels; expected H x W x 3 x N");
    const int64_t H = dims[0], W = dims[1], N = dims.size() == 4 ? dims[3] : 1;
    ISLKD_CHECK(H > 0 && W > 0 && H <= 4096 && W <= 4096, where(r, pos), ": 'X' has implausible image size ", H,
                "x", W);
    const int64_t need = checked_mul(H * W * 3, N, where(r, pos), ": the value count of 'X'");
    ISLKD_CHECK(static_cast<uint64_t>(need) == count, where(r, pos), ": 'X' holds ", count,
                " values but its dimensions ", H, "x", W, "x3x", N, " need ", need);
    out_.n = N;
    out_.c = 3;
    out_.h = static_cast<int>(H);
    out_.w = static_cast<int>(W);
    out_.pixels.resize(count);
    // Column-major X(h, w, c, n) sits at h + H*(w + W*(c + 3*n)); we store n, c, h, w row-major.
    const int64_t plane = H * W;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < 3; ++c) {
        const int64_t src_plane = (n * 3 + c) * plane;
        uint8_t* dst = out_.pixels.data() + src_plane;
        for (int64_t w = 0; w < W; ++w)
          for (int64_t h = 0; h < H; ++h) {
            const uint64_t si = static_cast<uint64_t>(src_plane + w * H + h);
            uint8_t v;
            if (nums.type == miUINT8) {
              v = nums.data[si];
            } else {
              double d = nums.at(si);
              ISLKD_CHECK(d >= 0 && d <= 255 && d == std::floor(d), where(r, pos), ": pixel ", si, " of 'X' is ", d,
                          ", not a uint8 value");
              v = static_cast<uint8_t>(d);
            }
            dst[h * W + w] = v;
          }
      }
    have_x_ = true;
  }

  void take_labels(const Region& r, size_t pos, const std::vector<int64_t>& dims, const Numbers& nums,
                   uint64_t count) {
    ISLKD_CHECK(!have_y_, where(r, pos), ": a second variable 'y'");
    ISLKD_CHECK(dims.size() == 2 && (dims[0] == 1 || dims[1] == 1), where(r, pos), ": 'y' has ", dims.size(),
                " dimensions ", dims[0], "x", dims[1], "...; expected an N x 1 vector");
    const uint64_t n = static_cast<uint64_t>(checked_mul(dims[0], dims[1], where(r, pos), ": the value count of 'y'"));
    ISLKD_CHECK(n == count, where(r, pos), ": 'y' holds ", count, " values but its dimensions say ", n);
    out_.labels.resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      double v = nums.at(i);
      ISLKD_CHECK(v >= 1 && v <= 10 && v == std::floor(v), where(r, pos), ": label ", v, " of entry ", i,
                  " of 'y' is out of range (SVHN labels are 1..10, 10 meaning digit 0)");
      out_.labels[i] = v == 10 ? 0 : static_cast<int32_t>(v);
    }
    have_y_ = true;
  }

  Region file_;
  std::string name_;
  MatLimits limits_;
  bool little_ = true;
  bool have_x_ = false, have_y_ = false;
  RawImages out_;
};

}  // namespace

RawImages parse_svhn_mat(const uint8_t* data, size_t size, const std::string& name, const MatLimits& limits) {
  return MatParser(data, size, name, limits).parse();
}

}  // namespace islkd::data
