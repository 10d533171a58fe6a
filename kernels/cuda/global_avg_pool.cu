// CUDA global average pooling: each of the N*C planes of HW floats -> its mean (forward); dy/HW broadcast over
// the plane (backward). Same semantics as kernels/cpu/global_avg_pool.cpp.
//
// Work split: forward, one warp per plane (planes are 16..1024 floats in our models: a block per plane would
// leave most threads idle, a thread per plane would read uncoalesced); lanes stride the plane, a shuffle tree
// adds the partials (deterministic). Backward: elementwise, one thread per input element.
// Napkin math: forward reads 4 bytes per element and writes 4 bytes per plane; backward writes 4 bytes per
// element and reads dy from cache. Memory-bound.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace islkd::cuda {

namespace {

// 8 warps (planes) per block: a multiple of 32 and small enough that a few hundred planes still spread over
// many SMs.
constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

__global__ void global_avg_pool_forward_kernel(int64_t NC, int64_t HW, float inv, const float* __restrict__ x,
                                               float* __restrict__ y) {
  const int64_t plane = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  const unsigned lane = threadIdx.x & 31u;
  // Every lane of a warp takes the same branch (plane is per warp), so the full-mask shuffles are safe.
  if (plane < NC) {
    const float* xp = x + plane * HW;
    float s = 0.0f;
    for (int64_t i = lane; i < HW; i += 32) s += xp[i];
    s = detail::warp_sum(s);
    if (lane == 0) y[plane] = s * inv;
  }
}

__global__ void global_avg_pool_backward_kernel(int64_t total, int64_t HW, float inv, const float* __restrict__ dy,
                                                float* __restrict__ dx) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = dy[i / HW] * inv;
}

}  // namespace

void global_avg_pool_forward(int64_t NC, int64_t HW, const float* x, float* y) {
  if (NC <= 0 || HW <= 0) return;
  const float inv = 1.0f / static_cast<float>(HW);
  ISLKD_LAUNCH(global_avg_pool_forward_kernel, dim3(static_cast<unsigned>(ceil_div(NC, kWarpsPerBlock))),
               dim3(kThreads), 0, compute_stream(), NC, HW, inv, x, y);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void global_avg_pool_backward(int64_t NC, int64_t HW, const float* dy, float* dx) {
  const int64_t total = NC * HW;
  if (total <= 0) return;
  const float inv = 1.0f / static_cast<float>(HW);
  ISLKD_LAUNCH(global_avg_pool_backward_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0,
               compute_stream(), total, HW, inv, dy, dx);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
