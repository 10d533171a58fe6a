// libFuzzer target: the IDX parser (raw and gzip) on arbitrary bytes must either succeed or throw islkd::Error.
// Input layout: 2 bytes choosing where the images file ends, then images file + labels file.
#include <cstdint>
#include <vector>

#include "data/formats.h"
#include "kernels/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace islkd::data;
  IdxLimits limits;
  limits.max_inflated_bytes = size_t(1) << 24;  // keep inflation bombs cheap
  try {
    std::vector<uint8_t> storage;
    const uint8_t* payload;
    size_t n;
    parse_idx_header(data, size, "fuzz.idx", storage, &payload, &n, limits);
  } catch (const islkd::Error&) {
  }
  if (size < 2) return 0;
  const size_t split = (size_t(data[0]) | size_t(data[1]) << 8) % (size - 1);
  try {
    RawImages r = parse_idx(data + 2, split, "images", data + 2 + split, size - 2 - split, "labels", 10, limits);
    if (r.pixels.size() != static_cast<size_t>(r.n * r.instance_bytes()) || r.labels.size() != size_t(r.n))
      __builtin_trap();
  } catch (const islkd::Error&) {
  }
  return 0;
}
