// NumPy .npy files of float32 arrays: how `infer` takes input batches and returns logits, so users (and the
// PyTorch parity test) exchange arrays with numpy without any extra dependency.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace islkd::npy {

struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;  // C order
};

// Accepts format versions 1.0, 2.0 and 3.0, dtype '<f4' (little-endian float32), C order. Anything else
// (float64, big-endian, Fortran order, object arrays, truncated data) is an Error naming the file and the problem.
Array parse(const uint8_t* bytes, size_t size, const std::string& name_for_errors);
Array read(const std::string& path);

// Writes version 1.0 (2.0 when the header needs it), '<f4', C order; atomically (temporary file + rename).
void write(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& data);

}  // namespace islkd::npy
