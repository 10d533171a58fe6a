// CPU ReLU forward/backward. Backward uses the output (y > 0), so the input need not be kept.
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

constexpr int64_t kParallelMin = 1 << 15;

void relu_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t n) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

}  // namespace islkd::cpu
