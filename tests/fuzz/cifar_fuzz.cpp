// libFuzzer target: the CIFAR-10 and CIFAR-100 record parsers must either succeed or throw islkd::Error.
#include <cstdint>

#include "data/formats.h"
#include "kernels/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace islkd::data;
  const struct {
    int label_bytes, label_index, classes;
  } configs[] = {{1, 0, 10}, {2, 1, 100}, {2, 0, 20}};
  for (const auto& c : configs) {
    RawImages out;
    try {
      parse_cifar(data, size, "fuzz.bin", c.label_bytes, c.label_index, c.classes, out);
      if (out.pixels.size() != static_cast<size_t>(out.n) * 3072 || out.labels.size() != size_t(out.n))
        __builtin_trap();
      for (int32_t l : out.labels)
        if (l < 0 || l >= c.classes) __builtin_trap();
    } catch (const islkd::Error&) {
    }
  }
  return 0;
}
