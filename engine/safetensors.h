// safetensors reader/writer: the format PyTorch users share weights in, and the format of our checkpoints.
// Layout: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian tensor bytes. Every field of an untrusted file is validated before use.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/atomic_file.h"  // write_file_atomic, which save() uses

namespace islkd::safetensors {

// Only the two dtypes a PyTorch state_dict of our models holds: F32 (weights, BN statistics) and
// I64 (BN's num_batches_tracked, index lists). Other dtypes are rejected with a message naming them.
enum class DType { F32, I64 };
const char* dtype_name(DType d);

struct Entry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // [] for a scalar (e.g. num_batches_tracked)
  std::vector<float> f32;      // the values when dtype == F32 (row-major)
  std::vector<int64_t> i64;    // the values when dtype == I64

  static Entry from_f32(std::string name, std::vector<int64_t> shape, std::vector<float> values);
  static Entry from_i64(std::string name, std::vector<int64_t> shape, std::vector<int64_t> values);
  int64_t numel() const;
};

struct File {
  std::vector<Entry> entries;                   // in data order (file order on load)
  std::map<std::string, std::string> metadata;  // the __metadata__ string map

  const Entry* find(const std::string& name) const;  // nullptr when absent
  void add(Entry e);                                 // throws on a duplicate name
};

// Parses a whole safetensors image from memory. `name_for_errors` (usually the path) starts every message.
// Throws islkd::Error for any malformed input; never reads outside [data, data + size).
File parse(const uint8_t* data, size_t size, const std::string& name_for_errors);
File load(const std::string& path);

// Serialises (header padded with spaces to a multiple of 8 so the data section is aligned).
std::vector<uint8_t> serialize(const File& file);
// Atomic: written to a temporary file in the same directory, flushed, fsync'ed, then renamed over `path`.
void save(const std::string& path, const File& file);

}  // namespace islkd::safetensors

namespace islkd {
// Reads a whole weights/array file (read_regular_file: regular files only, at most kMaxWeightsFileBytes); Error
// naming the path and the reason when it cannot.
std::vector<uint8_t> read_file_bytes(const std::string& path);
}  // namespace islkd
