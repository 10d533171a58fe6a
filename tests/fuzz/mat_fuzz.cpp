// libFuzzer target: the SVHN MAT (level 5, with miCOMPRESSED) parser must either succeed or throw islkd::Error.
#include <cstdint>

#include "data/formats.h"
#include "kernels/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace islkd::data;
  MatLimits limits;
  limits.max_inflated_bytes = size_t(1) << 24;  // keep inflation bombs cheap
  try {
    RawImages r = parse_svhn_mat(data, size, "fuzz.mat", limits);
    if (r.pixels.size() != static_cast<size_t>(r.n * r.instance_bytes()) || r.labels.size() != size_t(r.n))
      __builtin_trap();
    for (int32_t l : r.labels)
      if (l < 0 || l > 9) __builtin_trap();
  } catch (const islkd::Error&) {
  }
  return 0;
}
