// CRD's contrast against a memory bank and the bank's momentum update on CUDA; same semantics as
// kernels/cpu/crd_loss.cpp (the derivation is there).
//
// Work split, for B anchors, K1 = K + 1 index columns, D = 128 (the embedding), N bank rows:
//   normalise: one block per anchor (v_b = u_b / |u_b|, 1 / |u_b| kept);
//   scores: one warp per (b, k): the lanes read bank row idx[b, k] by index (D floats, coalesced) and warp-sum the
//     dot; e = exp(dot / T) to a B x K1 scratch. The gathered rows are never materialised: B x K1 x D floats would be
//     537 MB for B 64, K 16384;
//   Z (first call only, decided on the device: no host sync): one block sums the scratch in a fixed order;
//   rows: one block per anchor forms the row's loss and dL/ds_bk (over the scratch);
//   gradient: one block per (b, chunk of 256 k): partial g = sum_k dL/ds_bk M[idx_bk] per d, then one block per
//     anchor adds the chunks in order and takes g through the normalisation; one thread adds the row losses in
//     order in double. No atomics: the same bits on every run.
// Napkin math: the bank rows are read twice (scores, gradient): 2 x B x K1 x D x 4 bytes = 1.07 GB per side and step
// at B 64, K 16384 — memory-bound, ~0.3 ms per side at 4 TB/s if the gathers stay near bandwidth (the rows are
// 512-byte coalesced reads; the bank, 2 x 25.6 MB for 50,000 instances, mostly stays in L2 on an H200).
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"
#include "kernels/cuda/reduce.cuh"

namespace islkd::cuda {

namespace {

constexpr int kThreads = 256;     // 8 warps per block
constexpr int kWarps = kThreads / 32;
constexpr int64_t kChunk = 256;   // k per gradient block: B x K1 / 256 blocks (4,100 for B 64, K 16384)
constexpr double kContrastEps = 1e-7;  // crd/criterion.py eps

__global__ void crd_normalize_kernel(int64_t D, const float* __restrict__ u, float* __restrict__ v,
                                     float* __restrict__ inv_norm) {
  __shared__ float scratch[32];
  const float* ub = u + blockIdx.x * D;
  float s = 0.0f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += ub[d] * ub[d];
  const float inv = 1.0f / sqrtf(detail::block_sum(s, scratch));
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) v[blockIdx.x * D + d] = ub[d] * inv;
  if (threadIdx.x == 0) inv_norm[blockIdx.x] = inv;
}

__global__ void crd_scores_kernel(int64_t K1, int64_t D, float inv_T, const float* __restrict__ v,
                                  const float* __restrict__ memory, const int32_t* __restrict__ idx,
                                  float* __restrict__ e) {
  const int64_t b = blockIdx.y, k = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  float s = 0.0f;
  if (k < K1) {
    const float* m = memory + static_cast<int64_t>(idx[b * K1 + k]) * D;
    for (int64_t d = lane; d < D; d += 32) s += m[d] * v[b * D + d];
  }
  s = detail::warp_sum(s);  // every lane of the warp takes part, also past K1
  if (k < K1 && lane == 0) e[b * K1 + k] = expf(s * inv_T);
}

// Z = mean(e) * N, only while *z < 0 (the first batch of a run).
__global__ void crd_z_kernel(int64_t n, double N, const float* __restrict__ e, float* __restrict__ z) {
  __shared__ double scratch[32];
  if (*z >= 0.0f) return;  // uniform across the block: no thread reaches the barriers
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += e[i];
  s = detail::block_sum(s, scratch);
  __syncthreads();  // every thread has read *z before thread 0 writes it
  if (threadIdx.x == 0) *z = static_cast<float>(s / static_cast<double>(n) * N);
}

__global__ void crd_rows_kernel(int64_t K1, float a, float c, float scale, const float* __restrict__ e,
                                const float* __restrict__ z, float* __restrict__ w, float* __restrict__ row_loss) {
  __shared__ float scratch[32];
  const int64_t b = blockIdx.x;
  const float Z = *z;
  float l = 0.0f;
  for (int64_t k = threadIdx.x; k < K1; k += blockDim.x) {
    const float p = e[b * K1 + k] / Z;
    if (k == 0) {
      l += logf(p / (p + c));
      if (w) w[b * K1] = -c / (p + c) * scale;
    } else {
      l += logf(a / (p + c));
      if (w) w[b * K1 + k] = p / (p + c) * scale;
    }
  }
  l = detail::block_sum(l, scratch);
  if (threadIdx.x == 0) row_loss[b] = l;
}

// partial[(b * chunks + chunk) * D + d] = sum over the chunk's k of w_bk M[idx_bk, d].
__global__ void crd_grad_partial_kernel(int64_t K1, int64_t D, int64_t chunks, const float* __restrict__ w,
                                        const float* __restrict__ memory, const int32_t* __restrict__ idx,
                                        float* __restrict__ partial) {
  const int64_t b = blockIdx.y, k0 = static_cast<int64_t>(blockIdx.x) * kChunk;
  const int64_t k1 = k0 + kChunk < K1 ? k0 + kChunk : K1;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float s = 0.0f;
    for (int64_t k = k0; k < k1; ++k) s += w[b * K1 + k] * memory[static_cast<int64_t>(idx[b * K1 + k]) * D + d];
    partial[(b * chunks + blockIdx.x) * D + d] = s;
  }
}

// g = sum of the chunks (in order); du = (g - v <g, v>) / |u|. g goes through du's memory.
__global__ void crd_grad_finish_kernel(int64_t D, int64_t chunks, const float* __restrict__ partial,
                                       const float* __restrict__ v, const float* __restrict__ inv_norm,
                                       float* __restrict__ du) {
  __shared__ float scratch[32];
  const int64_t b = blockIdx.x;
  float dot = 0.0f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float g = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) g += partial[(b * chunks + c) * D + d];
    du[b * D + d] = g;
    dot += g * v[b * D + d];
  }
  dot = detail::block_sum(dot, scratch);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
    du[b * D + d] = (du[b * D + d] - v[b * D + d] * dot) * inv_norm[b];
}

__global__ void crd_sum_kernel(int64_t B, const float* __restrict__ row_loss, float* __restrict__ loss) {
  if (threadIdx.x != 0) return;
  double s = 0.0;
  for (int64_t b = 0; b < B; ++b) s += row_loss[b];
  loss[0] = static_cast<float>(-s / static_cast<double>(B));
}

__global__ void crd_update_kernel(int64_t D, float momentum, float* __restrict__ memory, const float* __restrict__ u,
                                  const int32_t* __restrict__ y) {
  __shared__ float scratch[32];
  if (y[blockIdx.x] < 0) return;  // a skipped row (uniform across the block)
  const float* ub = u + blockIdx.x * D;
  float* m = memory + static_cast<int64_t>(y[blockIdx.x]) * D;
  float s = 0.0f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += ub[d] * ub[d];
  const float inv = 1.0f / sqrtf(detail::block_sum(s, scratch));
  float r2 = 0.0f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float r = momentum * m[d] + (1.0f - momentum) * ub[d] * inv;
    r2 += r * r;
  }
  const float rinv = 1.0f / sqrtf(detail::block_sum(r2, scratch));
  // Each thread rewrites only the elements it read above: no barrier needed between the read and the write.
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
    m[d] = (momentum * m[d] + (1.0f - momentum) * ub[d] * inv) * rinv;
}

}  // namespace

void crd_contrast_forward_backward(int64_t B, int64_t K1, int64_t D, int64_t N, const float* u, const float* memory,
                                   const int32_t* idx, float T, float* z, float* du, float* loss) {
  ISLKD_CHECK(B >= 1 && K1 >= 2 && D >= 1 && N >= 1, "crd_contrast: empty inputs (B ", B, ", K+1 ", K1, ", D ", D,
              ", N ", N, ")");
  ISLKD_CHECK(B <= 65535 && ceil_div(K1, kWarps) <= 0x7fffffff, "crd_contrast: ", B, " x ", K1,
              " exceeds one launch's grid");
  detail::DeviceTemp<float> v(B * D), inv_norm(B), e(B * K1), w(du ? B * K1 : 0), row_loss(B);
  ISLKD_LAUNCH(crd_normalize_kernel, dim3(static_cast<unsigned>(B)), dim3(kThreads), 0, compute_stream(), D, u,
               v.get(), inv_norm.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(crd_scores_kernel, dim3(static_cast<unsigned>(ceil_div(K1, kWarps)), static_cast<unsigned>(B)),
               dim3(kThreads), 0, compute_stream(), K1, D, 1.0f / T, v.get(), memory, idx, e.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(crd_z_kernel, dim3(1), dim3(kThreads), 0, compute_stream(), B * K1, static_cast<double>(N), e.get(), z);
  ISLKD_CUDA_CHECK_LAUNCH();
  const double a = static_cast<double>(K1 - 1) / static_cast<double>(N);
  ISLKD_LAUNCH(crd_rows_kernel, dim3(static_cast<unsigned>(B)), dim3(kThreads), 0, compute_stream(), K1,
               static_cast<float>(a), static_cast<float>(a + kContrastEps),
               static_cast<float>(1.0 / (static_cast<double>(B) * T)), e.get(), z, du ? w.get() : nullptr,
               row_loss.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  if (du) {
    const int64_t chunks = ceil_div(K1, kChunk);
    detail::DeviceTemp<float> partial(B * chunks * D);
    ISLKD_LAUNCH(crd_grad_partial_kernel, dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(B)), dim3(128),
                 0, compute_stream(), K1, D, chunks, w.get(), memory, idx, partial.get());
    ISLKD_CUDA_CHECK_LAUNCH();
    ISLKD_LAUNCH(crd_grad_finish_kernel, dim3(static_cast<unsigned>(B)), dim3(128), 0, compute_stream(), D, chunks,
                 partial.get(), v.get(), inv_norm.get(), du);
    ISLKD_CUDA_CHECK_LAUNCH();
  }
  ISLKD_LAUNCH(crd_sum_kernel, dim3(1), dim3(32), 0, compute_stream(), B, row_loss.get(), loss);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void crd_memory_update(int64_t B, int64_t D, int64_t N, float* memory, const float* u, const int32_t* y,
                       float momentum) {
  ISLKD_CHECK(B >= 1 && D >= 1 && N >= 1 && B <= 0x7fffffff, "crd_memory_update: bad sizes (B ", B, ", D ", D,
              ", N ", N, ")");
  ISLKD_LAUNCH(crd_update_kernel, dim3(static_cast<unsigned>(B)), dim3(128), 0, compute_stream(), D, momentum, memory,
               u, y);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
