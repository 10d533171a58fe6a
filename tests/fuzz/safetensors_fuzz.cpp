// libFuzzer target: the safetensors parser (engine/safetensors.cpp, compiled in directly so the engine and its
// backends stay out of the fuzz build) must either succeed or throw islkd::Error on arbitrary bytes.
#include <cstdint>

#include "engine/safetensors.h"
#include "kernels/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    islkd::safetensors::File f = islkd::safetensors::parse(data, size, "fuzz.safetensors");
    for (const auto& e : f.entries) {
      const size_t n = e.dtype == islkd::safetensors::DType::F32 ? e.f32.size() : e.i64.size();
      if (static_cast<int64_t>(n) != e.numel()) __builtin_trap();
    }
  } catch (const islkd::Error&) {
  }
  return 0;
}
