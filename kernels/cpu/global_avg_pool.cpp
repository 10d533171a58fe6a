// CPU global average pooling: each of the N*C planes of HW floats -> its mean (one OpenMP iteration per plane;
// reads 4 bytes per input element, memory-bound). Backward broadcasts dy/HW over the plane.
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

void global_avg_pool_forward(int64_t NC, int64_t HW, const float* x, float* y) {
  const float inv = 1.0f / static_cast<float>(HW);
#pragma omp parallel for schedule(static) if (NC * HW > (1 << 15))
  for (int64_t p = 0; p < NC; ++p) {
    const float* xp = x + p * HW;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < HW; ++i) s += xp[i];
    y[p] = s * inv;
  }
}

void global_avg_pool_backward(int64_t NC, int64_t HW, const float* dy, float* dx) {
  const float inv = 1.0f / static_cast<float>(HW);
#pragma omp parallel for schedule(static) if (NC * HW > (1 << 15))
  for (int64_t p = 0; p < NC; ++p) {
    const float g = dy[p] * inv;
    float* dp = dx + p * HW;
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) dp[i] = g;
  }
}

}  // namespace islkd::cpu
