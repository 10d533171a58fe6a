// CPU channel ops used by concat / split / ShuffleNet's channel shuffle: pure data movement, contiguous runs of
// HW floats copied with memcpy (one OpenMP iteration per batch item; 8 bytes moved per element).
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

void channel_copy(int64_t N, int64_t HW, const float* src, int64_t src_C, int64_t src_c0, float* dst,
                  int64_t dst_C, int64_t dst_c0, int64_t nc) {
  const size_t bytes = static_cast<size_t>(nc * HW) * sizeof(float);
  if (bytes == 0) return;
#pragma omp parallel for schedule(static) if (N * nc * HW > (1 << 16))
  for (int64_t n = 0; n < N; ++n)
    std::memcpy(dst + (n * dst_C + dst_c0) * HW, src + (n * src_C + src_c0) * HW, bytes);
}

void channel_shuffle(int64_t N, int64_t C, int64_t HW, int64_t groups, const float* x, float* y, bool inverse) {
  const int64_t G = groups, Cg = C / groups;
  const size_t bytes = static_cast<size_t>(HW) * sizeof(float);
#pragma omp parallel for schedule(static) if (N * C * HW > (1 << 16))
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * C * HW;
    float* yn = y + n * C * HW;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t j = 0; j < Cg; ++j) {
        const int64_t grouped = g * Cg + j, shuffled = j * G + g;
        if (inverse)
          std::memcpy(yn + grouped * HW, xn + shuffled * HW, bytes);
        else
          std::memcpy(yn + shuffled * HW, xn + grouped * HW, bytes);
      }
  }
}

}  // namespace islkd::cpu
