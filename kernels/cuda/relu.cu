// ReLU forward (y = max(x, 0)) and backward (dx = dy where y > 0), grid-stride loops of 256 threads.
// Forward moves 8 B/element, backward 12 B; memory-bound. NaN maps to 0 (x > 0 is false for NaN), as on the CPU.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void relu_forward_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    y[i] = v > 0.0f ? v : 0.0f;
  }
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

}  // namespace

void relu_forward(const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  ISLKD_LAUNCH(relu_forward_kernel, elementwise_blocks(n, kThreads), kThreads, 0, compute_stream(), x, y, n);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t n) {
  if (n <= 0) return;
  ISLKD_LAUNCH(relu_backward_kernel, elementwise_blocks(n, kThreads), kThreads, 0, compute_stream(), y, dy, dx, n);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
