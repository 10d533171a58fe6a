// CPU ReLU forward/backward. Backward uses the output (y > 0), so the input need not be kept.
// Both loops are written branch-free (both operands loaded, then a select) so the compiler vectorises them: a
// ReLU mask is close to random, and the branchy scalar loop GCC emits for `y > 0 ? dy : 0` mispredicted on about
// half the elements (relu_backward was 8% of a resnet56->resnet20 KD step under perf, now below 1%).
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

constexpr int64_t kParallelMin = 1 << 15;

void relu_forward(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = v > 0.0f ? v : 0.0f;
  }
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = dy[i];
    const float v = y[i];
    dx[i] = v > 0.0f ? g : 0.0f;
  }
}

}  // namespace islkd::cpu
