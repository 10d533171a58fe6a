// CUDA batch norm over NCHW (statistics per channel over N*H*W): training forward, eval forward, backward.
// Same semantics as kernels/cpu/batch_norm.cpp: biased variance for normalisation, unbiased for running_var.
//
// Work split. Training forward and backward: one block per channel. A channel's N planes of HW floats are
// strided over the block's threads as one flat index i in [0, N*HW) (n = i / HW), so small planes (4x4 in a
// ResNet's last stage) still keep every thread busy; per-thread float partials are combined by a fixed shuffle
// tree (reduce.cuh), so results are deterministic. The CPU adds plane sums in double; here the per-thread
// partials of at most ceil(N*HW / 256) values are float, which for the batches we train (N*HW <= ~10^6) stays
// within 1e-5 relative of it. Eval forward is elementwise (grid-stride over N*C*HW).
// One block per channel keeps the two passes (mean, then squared deviations: no cancellation when |mean| >> std)
// and the normalisation in one launch with no global scratch; a layer with few channels and a huge N*HW would
// want a two-level reduction, which our models (C >= 16, N*HW <= 128*32*32) do not need.
//
// Napkin math: training forward reads x three times (mean, variance, normalise) and writes y once: 16 bytes per
// element, the re-reads of a channel (<= 512 KiB) mostly from L2. Backward reads x and dy twice and writes dx:
// 20 bytes per element. Eval: 8 bytes per element. All memory-bound.
// Backward overwrites dgamma, dbeta and dx (=), like every backward here; dx may be null.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace islkd::cuda {

namespace {

// 256 threads = 8 warps per channel: enough memory parallelism per SM with a few channels resident, and a
// multiple of 32 as block_sum requires.
constexpr int kChannelThreads = 256;
constexpr int kElementwiseThreads = 256;

__global__ void bn_forward_train_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                        const float* __restrict__ gamma, const float* __restrict__ beta,
                                        float* __restrict__ running_mean, float* __restrict__ running_var,
                                        float momentum, float eps, float* __restrict__ y,
                                        float* __restrict__ save_mean, float* __restrict__ save_invstd) {
  __shared__ float scratch[32];
  const int64_t c = blockIdx.x;
  const int64_t count = N * HW;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += x[((i / HW) * C + c) * HW + i % HW];
  const float mean = detail::block_sum(s, scratch) / static_cast<float>(count);
  float sq = 0.0f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const float d = x[((i / HW) * C + c) * HW + i % HW] - mean;
    sq += d * d;
  }
  sq = detail::block_sum(sq, scratch);
  const float var = sq / static_cast<float>(count);
  const float invstd = rsqrtf(var + eps);
  if (threadIdx.x == 0) {
    save_mean[c] = mean;
    save_invstd[c] = invstd;
    // PyTorch's running_var takes the unbiased estimate; with one value per channel there is none.
    const float unbiased = count > 1 ? sq / static_cast<float>(count - 1) : var;
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
  }
  const float a = invstd * gamma[c], b = beta[c];
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t off = ((i / HW) * C + c) * HW + i % HW;
    y[off] = (x[off] - mean) * a + b;
  }
}

__global__ void bn_forward_eval_kernel(int64_t total, int64_t C, int64_t HW, const float* __restrict__ x,
                                       const float* __restrict__ gamma, const float* __restrict__ beta,
                                       const float* __restrict__ running_mean,
                                       const float* __restrict__ running_var, float eps, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / HW) % C;
    const float a = rsqrtf(running_var[c] + eps) * gamma[c];
    y[i] = (x[i] - running_mean[c]) * a + beta[c];
  }
}

// dx = k*dy + a*(x - mean) + b with k = gamma*invstd, a = -k*invstd^2*mean(dy*xc), b = -k*mean(dy).
__global__ void bn_backward_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                   const float* __restrict__ dy, const float* __restrict__ gamma,
                                   const float* __restrict__ save_mean, const float* __restrict__ save_invstd,
                                   float* __restrict__ dx, float* __restrict__ dgamma, float* __restrict__ dbeta) {
  __shared__ float scratch[32];
  const int64_t c = blockIdx.x;
  const int64_t count = N * HW;
  const float mean = save_mean[c], invstd = save_invstd[c];
  float s = 0.0f, sx = 0.0f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t off = ((i / HW) * C + c) * HW + i % HW;
    s += dy[off];
    sx += dy[off] * (x[off] - mean);
  }
  const float sum_dy = detail::block_sum(s, scratch);
  const float sum_dy_xc = detail::block_sum(sx, scratch);
  if (threadIdx.x == 0) {
    dbeta[c] = sum_dy;
    dgamma[c] = sum_dy_xc * invstd;
  }
  if (dx == nullptr) return;  // after the last barrier: every thread takes the same branch anyway
  const float inv_count = 1.0f / static_cast<float>(count);
  const float k = gamma[c] * invstd;
  const float a = -k * (sum_dy_xc * inv_count) * invstd * invstd;
  const float b = -k * (sum_dy * inv_count);
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t off = ((i / HW) * C + c) * HW + i % HW;
    dx[off] = k * dy[off] + a * (x[off] - mean) + b;
  }
}

}  // namespace

void batch_norm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                              const float* beta, float* running_mean, float* running_var, float momentum,
                              float eps, float* y, float* save_mean, float* save_invstd) {
  if (C == 0 || N * HW == 0) return;
  ISLKD_LAUNCH(bn_forward_train_kernel, dim3(static_cast<unsigned>(C)), dim3(kChannelThreads), 0, compute_stream(),
               N, C, HW, x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void batch_norm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, float eps,
                             float* y) {
  const int64_t total = N * C * HW;
  if (total == 0) return;
  ISLKD_LAUNCH(bn_forward_eval_kernel, dim3(elementwise_blocks(total, kElementwiseThreads)),
               dim3(kElementwiseThreads), 0, compute_stream(), total, C, HW, x, gamma, beta, running_mean,
               running_var, eps, y);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx, float* dgamma,
                         float* dbeta) {
  if (C == 0 || N * HW == 0) return;
  ISLKD_LAUNCH(bn_backward_kernel, dim3(static_cast<unsigned>(C)), dim3(kChannelThreads), 0, compute_stream(), N,
               C, HW, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
