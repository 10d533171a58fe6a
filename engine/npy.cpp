// .npy float32 reader/writer. The header is a Python dict literal; we parse just the three keys numpy writes
// ('descr', 'fortran_order', 'shape') with a small tokenizer instead of evaluating anything.
#include "engine/npy.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include "engine/safetensors.h"
#include "kernels/common/checked.h"
#include "kernels/common/error.h"

namespace islkd::npy {

namespace {

struct HeaderParser {
  const std::string& s;
  const std::string& file;
  const std::string& shown;  // the header as printed in errors: one line, printable
  size_t i = 0;

  void skip_ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    skip_ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  void expect(char c) {
    ISLKD_CHECK(eat(c), file, ": malformed .npy header (expected '", c, "' at offset ", i, "): ", shown);
  }
  std::string string_literal() {
    skip_ws();
    ISLKD_CHECK(i < s.size() && (s[i] == '\'' || s[i] == '"'), file, ": malformed .npy header (expected a string): ",
                shown);
    const char q = s[i++];
    const size_t start = i;
    while (i < s.size() && s[i] != q) ++i;
    ISLKD_CHECK(i < s.size(), file, ": malformed .npy header (unterminated string): ", shown);
    return s.substr(start, i++ - start);
  }
  std::string word() {
    skip_ws();
    const size_t start = i;
    while (i < s.size() && std::isalnum(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(start, i - start);
  }
};

}  // namespace

Array parse(const uint8_t* bytes, size_t size, const std::string& file) {
  static const char kMagic[] = "\x93NUMPY";
  ISLKD_CHECK(size >= 10 && std::memcmp(bytes, kMagic, 6) == 0, file, ": not a .npy file (bad magic or truncated)");
  const int major = bytes[6];
  ISLKD_CHECK(major >= 1 && major <= 3, file, ": .npy format version ", major, ".", int(bytes[7]), " is not supported");
  size_t header_len, pos;
  if (major == 1) {
    header_len = bytes[8] | (size_t(bytes[9]) << 8);
    pos = 10;
  } else {
    ISLKD_CHECK(size >= 12, file, ": truncated .npy header");
    header_len = bytes[8] | (size_t(bytes[9]) << 8) | (size_t(bytes[10]) << 16) | (size_t(bytes[11]) << 24);
    pos = 12;
  }
  ISLKD_CHECK(header_len <= size - pos, file, ": .npy header length ", header_len, " runs past the end of the ", size,
              "-byte file");
  const std::string header(reinterpret_cast<const char*>(bytes + pos), header_len);
  pos += header_len;

  std::string shown = header.substr(0, 200);
  for (char& ch : shown)
    if (ch < 32 || ch > 126) ch = ' ';
  while (!shown.empty() && shown.back() == ' ') shown.pop_back();
  HeaderParser p{header, file, shown};
  std::string descr;
  bool fortran = false, have_descr = false, have_order = false, have_shape = false;
  Array out;
  p.expect('{');
  while (!p.eat('}')) {
    const std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr") {
      descr = p.string_literal();
      have_descr = true;
    } else if (key == "fortran_order") {
      const std::string w = p.word();
      ISLKD_CHECK(w == "True" || w == "False", file, ": fortran_order must be True or False, got '", w, "'");
      fortran = w == "True";
      have_order = true;
    } else if (key == "shape") {
      p.expect('(');
      while (!p.eat(')')) {
        const std::string w = p.word();
        const bool digits = std::all_of(w.begin(), w.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
        ISLKD_CHECK(!w.empty() && w.size() < 18 && digits, file, ": bad dimension '", w, "' in the .npy shape: ",
                    shown);
        out.shape.push_back(std::stoll(w));
        if (!p.eat(',')) {
          p.expect(')');
          break;
        }
      }
      have_shape = true;
    } else {
      ISLKD_FAIL(file, ": unexpected key '", key, "' in the .npy header");
    }
    if (!p.eat(',')) {
      p.expect('}');
      break;
    }
  }
  ISLKD_CHECK(have_descr && have_order && have_shape, file,
              ": the .npy header lacks one of 'descr', 'fortran_order', 'shape': ", shown);
  ISLKD_CHECK(descr == "<f4", file, ": dtype '", descr,
              "' is not supported; save the array as little-endian float32 (x.astype(np.float32))");
  ISLKD_CHECK(!fortran, file, ": Fortran-ordered arrays are not supported; save with np.ascontiguousarray(x)");

  uint64_t numel = 1;
  for (int64_t d : out.shape) {
    ISLKD_CHECK(d == 0 || numel <= std::numeric_limits<uint64_t>::max() / 4 / uint64_t(d), file, ": shape overflows");
    numel *= uint64_t(d);
  }
  ISLKD_CHECK(numel * 4 == size - pos, file, ": the shape needs ", numel * 4, " data bytes but the file holds ",
              size - pos, " (truncated or corrupted)");
  out.data.resize(numel);
  if (numel) std::memcpy(out.data.data(), bytes + pos, numel * 4);
  return out;
}

Array read(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse(bytes.data(), bytes.size(), path);
}

void write(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& data) {
  int64_t numel = 1;
  for (int64_t d : shape) numel = checked_mul(numel, d, "npy::write '", path, "': element count");
  ISLKD_CHECK(numel == static_cast<int64_t>(data.size()), "npy::write '", path, "': ", data.size(),
              " values for a shape of ", numel, " elements");
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  // A Python tuple: (), (5,), (2, 3).
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(shape[i]);
  }
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  // numpy pads the header with spaces and ends it with '\n' so the data starts on a 64-byte boundary.
  const bool v2 = dict.size() + 1 + 10 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  size_t total = prefix + dict.size() + 1;
  while (total % 64 != 0) ++total;
  const size_t header_len = total - prefix;
  dict.append(header_len - dict.size() - 1, ' ');
  dict.push_back('\n');

  std::vector<uint8_t> out(total + data.size() * 4);
  std::memcpy(out.data(), "\x93NUMPY", 6);
  out[6] = v2 ? 2 : 1;
  out[7] = 0;
  for (size_t i = 0; i < prefix - 8; ++i) out[8 + i] = static_cast<uint8_t>(header_len >> (8 * i));
  std::memcpy(out.data() + prefix, dict.data(), dict.size());
  if (!data.empty()) std::memcpy(out.data() + total, data.data(), data.size() * 4);
  write_file_atomic(path, out.data(), out.size());
}

}  // namespace islkd::npy
