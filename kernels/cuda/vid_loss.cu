// VID's Gaussian negative log-likelihood on CUDA; same semantics as kernels/cpu/vid_loss.cpp (the derivation is there):
//   L = mean over N*C*HW of 0.5 ((mu - t)^2 / v_c + log v_c), v_c = softplus(log_scale_c) + eps.
// Work split: one block of 256 threads per channel c (it owns the channel's variance and its gradient: no atomics);
// the threads walk the channel's N x HW elements (consecutive k of one n: coalesced), write dL/dmu and block-sum the
// squared error. One finishing thread adds the channel losses in order in double: the same value on every run.
// 12 bytes per element: memory-bound.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"
#include "kernels/cuda/reduce.cuh"

namespace islkd::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps per channel: 8x8..32x32 maps times the batch

__global__ void vid_channel_kernel(int64_t N, int64_t C, int64_t HW, float inv, float eps, const float* __restrict__ pred,
                                   const float* __restrict__ target, const float* __restrict__ log_scale,
                                   float* __restrict__ dpred, float* __restrict__ dlog_scale,
                                   float* __restrict__ per_channel) {
  __shared__ float scratch[32];
  const int64_t c = blockIdx.x;
  const float ls = log_scale[c];
  const float v = (ls > 20.0f ? ls : log1pf(expf(ls))) + eps;
  float sq = 0.0f;
  for (int64_t e = threadIdx.x; e < N * HW; e += blockDim.x) {
    const int64_t n = e / HW, k = e % HW, i = (n * C + c) * HW + k;
    const float d = pred[i] - target[i];
    sq += d * d;
    if (dpred) dpred[i] = d / v * inv;
  }
  sq = detail::block_sum(sq, scratch);
  if (threadIdx.x != 0) return;
  const float m = static_cast<float>(N * HW);
  per_channel[c] = 0.5f * (sq / v + m * logf(v));
  if (dlog_scale) dlog_scale[c] = 1.0f / (1.0f + expf(-ls)) * 0.5f * (m / v - sq / (v * v)) * inv;
}

__global__ void vid_sum_kernel(int64_t n, const float* __restrict__ partial, double scale, float* __restrict__ loss) {
  if (threadIdx.x != 0) return;
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += partial[i];
  loss[0] = static_cast<float>(s * scale);
}

}  // namespace

void vid_loss_forward_backward(int64_t N, int64_t C, int64_t HW, const float* pred, const float* target,
                               const float* log_scale, float eps, float* dpred, float* dlog_scale, float* loss) {
  ISLKD_CHECK(N >= 1 && C >= 1 && HW >= 1, "vid_loss: empty features (N ", N, ", C ", C, ", HW ", HW, ")");
  ISLKD_CHECK(C <= 0x7fffffff, "vid_loss: ", C, " channels exceed one launch's grid");
  detail::DeviceTemp<float> per(C);
  const double inv = 1.0 / static_cast<double>(N * C * HW);
  ISLKD_LAUNCH(vid_channel_kernel, dim3(static_cast<unsigned>(C)), dim3(kThreads), 0, compute_stream(), N, C, HW,
               static_cast<float>(inv), eps, pred, target, log_scale, dpred, dlog_scale, per.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(vid_sum_kernel, dim3(1), dim3(32), 0, compute_stream(), C, per.get(), inv, loss);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
