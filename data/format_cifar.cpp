// CIFAR-10 / CIFAR-100 "binary version" reader: fixed-size records of label byte(s) then 3072 pixel bytes,
// already in CHW order (1024 red, 1024 green, 1024 blue, each row-major 32x32).
#include <cstring>

#include "data/formats.h"
#include "kernels/common/error.h"

namespace islkd::data {

void parse_cifar(const uint8_t* data, size_t size, const std::string& name, int label_bytes, int label_index,
                 int num_classes, RawImages& out) {
  constexpr size_t kPixels = 3 * 32 * 32;
  const size_t record = size_t(label_bytes) + kPixels;
  ISLKD_CHECK(label_index >= 0 && label_index < label_bytes, "parse_cifar: label index ", label_index,
              " outside the ", label_bytes, " label bytes");
  ISLKD_CHECK(size > 0, name, ": empty CIFAR file");
  ISLKD_CHECK(size % record == 0, name, ": size ", size, " is not a whole number of ", record,
              "-byte CIFAR records (truncated or not a ", label_bytes == 1 ? "CIFAR-10" : "CIFAR-100",
              " binary file; the last record starts at offset ", size / record * record, ")");
  ISLKD_CHECK(out.n == 0 || (out.c == 3 && out.h == 32 && out.w == 32), name,
              ": cannot append CIFAR records to images of another shape");
  const size_t n = size / record;
  out.c = 3;
  out.h = 32;
  out.w = 32;
  const size_t base = out.pixels.size();
  out.pixels.resize(base + n * kPixels);
  out.labels.reserve(out.labels.size() + n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* r = data + i * record;
    const int label = r[label_index];
    ISLKD_CHECK(label < num_classes, name, ": label ", label, " of record ", i, " (offset ", i * record + label_index,
                ") is out of range for ", num_classes, " classes");
    out.labels.push_back(label);
    std::memcpy(out.pixels.data() + base + i * kPixels, r + label_bytes, kPixels);
  }
  out.n += static_cast<int64_t>(n);
}

}  // namespace islkd::data
