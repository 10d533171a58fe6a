// safetensors parsing with full validation (lengths, JSON, dtypes, shapes vs byte ranges, contiguous
// non-overlapping offsets, duplicate names); save() writes through engine/atomic_file.h.
#include "engine/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/common/regular_file.h"

#include "kernels/common/checked.h"
#include "kernels/common/error.h"

namespace islkd::safetensors {

namespace {

// The reference implementation refuses headers above 100 MB; a larger length is a corrupted file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

size_t dtype_size(DType d) { return d == DType::F32 ? 4 : 8; }

bool host_is_little_endian() {
  const uint16_t one = 1;
  uint8_t b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

// The dtypes of the format we know by name, so a file holding one of them gets "not supported", not "unknown".
bool is_known_dtype(const std::string& s) {
  static const std::set<std::string> known = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
                                              "I32",  "U32", "F32", "F64", "I64", "U64"};
  return known.count(s) > 0;
}

struct Range {
  uint64_t begin, end;
  size_t entry;
};

}  // namespace

const char* dtype_name(DType d) { return d == DType::F32 ? "F32" : "I64"; }

int64_t Entry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n = checked_mul(n, d, "safetensors entry '", name, "': element count");
  return n;
}

Entry Entry::from_f32(std::string name, std::vector<int64_t> shape, std::vector<float> values) {
  Entry e;
  e.name = std::move(name);
  e.dtype = DType::F32;
  e.shape = std::move(shape);
  e.f32 = std::move(values);
  ISLKD_CHECK(static_cast<int64_t>(e.f32.size()) == e.numel(), "safetensors entry '", e.name, "': ", e.f32.size(),
              " values for a shape of ", e.numel(), " elements");
  return e;
}

Entry Entry::from_i64(std::string name, std::vector<int64_t> shape, std::vector<int64_t> values) {
  Entry e;
  e.name = std::move(name);
  e.dtype = DType::I64;
  e.shape = std::move(shape);
  e.i64 = std::move(values);
  ISLKD_CHECK(static_cast<int64_t>(e.i64.size()) == e.numel(), "safetensors entry '", e.name, "': ", e.i64.size(),
              " values for a shape of ", e.numel(), " elements");
  return e;
}

const Entry* File::find(const std::string& name) const {
  for (const Entry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

void File::add(Entry e) {
  ISLKD_CHECK(find(e.name) == nullptr, "safetensors: duplicate tensor name '", e.name, "'");
  entries.push_back(std::move(e));
}

File parse(const uint8_t* data, size_t size, const std::string& file) {
  ISLKD_CHECK(host_is_little_endian(), file, ": safetensors needs a little-endian host");
  ISLKD_CHECK(size >= 8, file, ": file is ", size, " bytes, too short for the 8-byte header length (truncated?)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  ISLKD_CHECK(header_len <= size - 8, file, ": header length ", header_len, " exceeds the ", size - 8,
              " bytes that follow it (truncated file or not a safetensors file)");
  ISLKD_CHECK(header_len <= kMaxHeaderBytes, file, ": header length ", header_len, " is above the 100 MB limit");
  ISLKD_CHECK(header_len >= 2 && data[8] == '{', file,
              ": the header does not start with '{' (not a safetensors file or corrupted)");
  const uint8_t* data_section = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  // Duplicate keys are legal JSON and nlohmann keeps the last one silently, so they are caught while parsing.
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                    nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + header_len, on_event);
  } catch (const nlohmann::json::exception& e) {
    ISLKD_FAIL(file, ": the JSON header (", header_len, " bytes) does not parse: ", e.what());
  }
  ISLKD_CHECK(header.is_object(), file, ": the JSON header is not an object");
  ISLKD_CHECK(duplicate.empty(), file, ": tensor '", duplicate, "' appears twice in the header");

  File out;
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      ISLKD_CHECK(v.is_object(), file, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        ISLKD_CHECK(m.value().is_string(), file, ": __metadata__ entry '", m.key(), "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = file + ": tensor '" + name + "'";
    ISLKD_CHECK(v.is_object(), where, ": header entry is not an object");
    ISLKD_CHECK(v.contains("dtype") && v["dtype"].is_string(), where, ": missing or non-string 'dtype'");
    ISLKD_CHECK(v.contains("shape") && v["shape"].is_array(), where, ": missing or non-array 'shape'");
    ISLKD_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2, where,
                ": 'data_offsets' must be an array [begin, end]");
    const std::string dt = v["dtype"].get<std::string>();
    Entry e;
    e.name = name;
    if (dt == "F32") {
      e.dtype = DType::F32;
    } else if (dt == "I64") {
      e.dtype = DType::I64;
    } else if (is_known_dtype(dt)) {
      ISLKD_FAIL(where, ": dtype ", dt, " is not supported (this engine reads F32 and I64 only)");
    } else {
      ISLKD_FAIL(where, ": unknown dtype '", dt, "'");
    }
    // Element count with overflow checks: a corrupted shape must not wrap around into a "valid" size.
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      ISLKD_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where,
                  ": shape entries must be non-negative integers, got ", d.dump());
      uint64_t dim = d.get<uint64_t>();
      ISLKD_CHECK(dim == 0 || numel <= std::numeric_limits<uint64_t>::max() / 8 / dim, where, ": shape ",
                  v["shape"].dump(), " overflows");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& offs = v["data_offsets"];
    ISLKD_CHECK(offs[0].is_number_unsigned() && offs[1].is_number_unsigned(), where,
                ": data_offsets must be non-negative integers, got ", offs.dump());
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    ISLKD_CHECK(begin <= end, where, ": data_offsets ", offs.dump(), " end before they begin");
    ISLKD_CHECK(end <= data_size, where, ": data_offsets ", offs.dump(), " point outside the data section of ",
                data_size, " bytes (truncated file?)");
    const uint64_t expected = numel * dtype_size(e.dtype);
    ISLKD_CHECK(end - begin == expected, where, ": shape ", v["shape"].dump(), " of ", dt, " needs ", expected,
                " bytes but data_offsets ", offs.dump(), " span ", end - begin);
    if (e.dtype == DType::F32) {
      e.f32.resize(numel);
      if (numel) std::memcpy(e.f32.data(), data_section + begin, expected);
    } else {
      e.i64.resize(numel);
      if (numel) std::memcpy(e.i64.data(), data_section + begin, expected);
    }
    ranges.push_back({begin, end, out.entries.size()});
    out.entries.push_back(std::move(e));
  }

  // The format requires the byte buffer to be indexed entirely, in order, without holes or overlaps.
  std::stable_sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (const Range& r : ranges) {
    const std::string& name = out.entries[r.entry].name;
    ISLKD_CHECK(r.begin >= pos, file, ": tensor '", name, "' bytes [", r.begin, ", ", r.end,
                ") overlap the previous tensor, which ends at ", pos);
    ISLKD_CHECK(r.begin == pos, file, ": tensor '", name, "' starts at ", r.begin, " but the previous one ends at ", pos,
                " (a hole in the data section)");
    pos = r.end;
  }
  ISLKD_CHECK(pos == data_size, file, ": the data section is ", data_size, " bytes but the tensors cover only ", pos,
              " (trailing garbage or a missing header entry)");

  // Return entries in data order, as they lie in the file.
  std::vector<Entry> ordered;
  ordered.reserve(out.entries.size());
  for (const Range& r : ranges) ordered.push_back(std::move(out.entries[r.entry]));
  out.entries = std::move(ordered);
  return out;
}

File load(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> serialize(const File& file) {
  ISLKD_CHECK(host_is_little_endian(), "safetensors needs a little-endian host");
  nlohmann::json header = nlohmann::json::object();
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const Entry& e : file.entries) {
    ISLKD_CHECK(e.name != "__metadata__", "safetensors: '__metadata__' is reserved and cannot name a tensor");
    ISLKD_CHECK(names.insert(e.name).second, "safetensors: duplicate tensor name '", e.name, "'");
    const size_t n = e.dtype == DType::F32 ? e.f32.size() : e.i64.size();
    ISLKD_CHECK(static_cast<int64_t>(n) == e.numel(), "safetensors: tensor '", e.name, "' has ", n,
                " values for a shape of ", e.numel(), " elements");
    const uint64_t bytes = n * dtype_size(e.dtype);
    header[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');

  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const Entry& e : file.entries) {
    const size_t bytes = e.dtype == DType::F32 ? e.f32.size() * 4 : e.i64.size() * 8;
    if (bytes) std::memcpy(p, e.dtype == DType::F32 ? static_cast<const void*>(e.f32.data()) : e.i64.data(), bytes);
    p += bytes;
  }
  return out;
}

void save(const std::string& path, const File& file) {
  std::vector<uint8_t> bytes = serialize(file);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace islkd::safetensors

namespace islkd {

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  return read_regular_file(path, kMaxWeightsFileBytes, "file");
}

}  // namespace islkd
