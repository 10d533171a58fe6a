// Feature-distillation losses on CUDA: attention transfer (AT, p = 2) and the mean squared error of FitNet's hint.
// Same semantics as kernels/cpu/feature_losses.cpp (the derivation is there):
//   AT:  u = mean_c f^2 per position, a = u / max(||u||, 1e-12) per sample; L = mean over N*HW of (a_s - a_t)^2
//   MSE: L = mean (a - b)^2
//
// AT work split: one block of 256 threads per sample. Sweep 1: each thread forms u_k for its positions k (reading
// the Cs + Ct channels of k: consecutive threads read consecutive k, so every channel row is read coalesced) and
// keeps them in a global temporary; block sums give the two norms. Sweep 2 (same positions, same thread: no barrier)
// gives the loss and <G, a>; sweep 3 writes dL/df = dL/du_k * 2 f_ck / Cs. Reads each student element twice and
// each teacher element once, writes one gradient element: ~16 bytes per student element, memory-bound.
// MSE: a grid-stride loop with per-block partial sums (fixed grid, fixed tree) and one finishing block that adds
// the partials in order in double, so the value is the same on every run (no float atomics). 12 bytes per element.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/device_temp.cuh"

namespace islkd::cuda {

namespace {

constexpr int kThreads = 256;             // 8 warps: enough positions per sample in flight for 8x8..32x32 maps
constexpr int kMseMaxBlocks = 512;        // bounds the partials the finishing block adds
constexpr float kNormalizeEps = 1e-12f;   // F.normalize's default

__global__ void at_loss_kernel(int64_t Cs, int64_t Ct, int64_t HW, float inv_count, const float* __restrict__ fs,
                               const float* __restrict__ ft, float* __restrict__ u, float* __restrict__ per_sample,
                               float* __restrict__ dfs) {
  __shared__ float scratch[32];
  const int64_t n = blockIdx.x;
  const float* f = fs + n * Cs * HW;
  const float* g = ft + n * Ct * HW;
  float* us = u + 2 * n * HW;
  float* ut = us + HW;
  float s2 = 0.0f, t2 = 0.0f;
  for (int64_t k = threadIdx.x; k < HW; k += blockDim.x) {
    float a = 0.0f, b = 0.0f;
    for (int64_t c = 0; c < Cs; ++c) a += f[c * HW + k] * f[c * HW + k];
    for (int64_t c = 0; c < Ct; ++c) b += g[c * HW + k] * g[c * HW + k];
    a /= static_cast<float>(Cs);
    b /= static_cast<float>(Ct);
    us[k] = a;
    ut[k] = b;
    s2 += a * a;
    t2 += b * b;
  }
  const float ns = sqrtf(detail::block_sum(s2, scratch)), nt = sqrtf(detail::block_sum(t2, scratch));
  const float ds = fmaxf(ns, kNormalizeEps), dt = fmaxf(nt, kNormalizeEps);
  float loss = 0.0f, ga = 0.0f;
  for (int64_t k = threadIdx.x; k < HW; k += blockDim.x) {
    const float a = us[k] / ds, d = a - ut[k] / dt;
    loss += d * d;
    ga += 2.0f * d * inv_count * a;
  }
  loss = detail::block_sum(loss, scratch);
  ga = detail::block_sum(ga, scratch);
  if (threadIdx.x == 0) per_sample[n] = loss;
  if (dfs) {
    float* df = dfs + n * Cs * HW;
    const float k2 = 2.0f / static_cast<float>(Cs);
    for (int64_t k = threadIdx.x; k < HW; k += blockDim.x) {
      const float a = us[k] / ds, G = 2.0f * (a - ut[k] / dt) * inv_count;
      const float du = (ns > kNormalizeEps ? G - a * ga : G) / ds * k2;
      for (int64_t c = 0; c < Cs; ++c) df[c * HW + k] = du * f[c * HW + k];
    }
  }
}

// loss[0] = scale * (the ordered double sum of the n partials).
__global__ void sum_partials_kernel(int64_t n, const float* __restrict__ partial, double scale,
                                    float* __restrict__ loss) {
  if (threadIdx.x != 0) return;
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += partial[i];
  loss[0] = static_cast<float>(s * scale);
}

__global__ void mse_kernel(int64_t n, float k, const float* __restrict__ a, const float* __restrict__ b,
                           float* __restrict__ da, float* __restrict__ partial) {
  __shared__ float scratch[32];
  float s = 0.0f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float d = a[i] - b[i];
    s += d * d;
    if (da) da[i] = k * d;
  }
  s = detail::block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

}  // namespace

void at_loss_forward_backward(int64_t N, int64_t Cs, int64_t Ct, int64_t HW, const float* student,
                              const float* teacher, float* dstudent, float* loss) {
  ISLKD_CHECK(N >= 1 && Cs >= 1 && Ct >= 1 && HW >= 1, "at_loss: empty feature maps (N ", N, ", channels ", Cs, "/",
              Ct, ", HW ", HW, ")");
  ISLKD_CHECK(N <= 0x7fffffff, "at_loss: ", N, " samples exceed one launch's grid");
  detail::DeviceTemp<float> u(2 * N * HW), per(N);
  const float inv_count = static_cast<float>(1.0 / static_cast<double>(N * HW));
  ISLKD_LAUNCH(at_loss_kernel, dim3(static_cast<unsigned>(N)), dim3(kThreads), 0, compute_stream(), Cs, Ct, HW,
               inv_count, student, teacher, u.get(), per.get(), dstudent);
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(sum_partials_kernel, dim3(1), dim3(32), 0, compute_stream(), N, per.get(),
               1.0 / static_cast<double>(N * HW), loss);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void mse_loss_forward_backward(int64_t n, const float* a, const float* b, float* da, float* loss) {
  ISLKD_CHECK(n >= 1, "mse_loss: empty inputs");
  const int64_t blocks = std::min<int64_t>(ceil_div(n, kThreads * 4), kMseMaxBlocks);
  detail::DeviceTemp<float> partial(blocks);
  ISLKD_LAUNCH(mse_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, compute_stream(), n,
               static_cast<float>(2.0 / static_cast<double>(n)), a, b, da, partial.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(sum_partials_kernel, dim3(1), dim3(32), 0, compute_stream(), blocks, partial.get(),
               1.0 / static_cast<double>(n), loss);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
