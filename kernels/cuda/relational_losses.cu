// The relational distillation losses on CUDA: similarity preserving (SP) and probabilistic knowledge transfer (PKT)
// over a batch of flattened features. Same semantics as kernels/cpu/relational_losses.cpp (the derivation is there).
//
// Work split: the N x N relation matrices are small (N is the batch), the features are not (SP's feat[-2] of a
// resnet32x4 is 8192 floats per instance). So: one block per (i, j) forms <f_i, f_j> (a block sum over D: each
// feature row is read N times, coalesced), one block per row i does the row-wise normalisation, the loss and the
// relation gradient, and a grid-stride loop forms df_ik = sum_j (dG_ij + dG_ji) f_jk (N reads per element). Row
// losses are added by one finishing thread in order in double, so the loss is the same on every run (no float
// atomics). ~2N reads of each feature element forward + backward: for batch 64 this is compute-light next to a
// step's convolutions.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"
#include "kernels/cuda/reduce.cuh"

namespace islkd::cuda {

namespace {

constexpr int kThreads = 256;            // 8 warps: enough of D (or N) in flight per block
constexpr float kNormalizeEps = 1e-12f;  // F.normalize's default (SP's Gram rows)
constexpr float kPktEps = 1e-7f;         // PKT.py cosine_similarity_loss(eps=0.0000001)

// G[i * N + j] = <f_i, f_j>; one block per pair.
__global__ void gram_kernel(int64_t N, int64_t D, const float* __restrict__ f, float* __restrict__ G) {
  __shared__ float scratch[32];
  const int64_t i = blockIdx.x / N, j = blockIdx.x % N;
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += f[i * D + k] * f[j * D + k];
  s = detail::block_sum(s, scratch);
  if (threadIdx.x == 0) G[blockIdx.x] = s;
}

// df_ik = sum_j (dG_ij + dG_ji) f_jk.
__global__ void gram_backward_kernel(int64_t N, int64_t D, const float* __restrict__ f, const float* __restrict__ dG,
                                     float* __restrict__ df) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < N * D;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / D, k = e % D;
    float s = 0.0f;
    for (int64_t j = 0; j < N; ++j) s += (dG[i * N + j] + dG[j * N + i]) * f[j * D + k];
    df[e] = s;
  }
}

// SP, one block per row i of the Gram matrices: row loss, and dG (nullable) through the row normalisation.
__global__ void sp_rows_kernel(int64_t N, float inv, const float* __restrict__ Gs, const float* __restrict__ Gt,
                               float* __restrict__ dG, float* __restrict__ per_row) {
  __shared__ float scratch[32];
  const float* gs = Gs + blockIdx.x * N;
  const float* gt = Gt + blockIdx.x * N;
  float s2 = 0.0f, t2 = 0.0f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) s2 += gs[j] * gs[j], t2 += gt[j] * gt[j];
  const float ns = sqrtf(detail::block_sum(s2, scratch)), nt = sqrtf(detail::block_sum(t2, scratch));
  const float ds = fmaxf(ns, kNormalizeEps), dt = fmaxf(nt, kNormalizeEps);
  float loss = 0.0f, dot = 0.0f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const float y = gs[j] / ds, diff = y - gt[j] / dt;
    loss += diff * diff;
    dot += y * 2.0f * diff * inv;
  }
  loss = detail::block_sum(loss, scratch);
  dot = detail::block_sum(dot, scratch);
  if (threadIdx.x == 0) per_row[blockIdx.x] = loss;
  if (!dG) return;
  if (!(ns > kNormalizeEps)) dot = 0.0f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const float y = gs[j] / ds, dy = 2.0f * (y - gt[j] / dt) * inv;
    dG[blockIdx.x * N + j] = (dy - y * dot) / ds;
  }
}

// x_i = f_i / (|f_i| + eps), norms[i] = |f_i|; one block per row.
__global__ void pkt_unit_rows_kernel(int64_t D, const float* __restrict__ f, float* __restrict__ x,
                                     float* __restrict__ norms) {
  __shared__ float scratch[32];
  const float* r = f + blockIdx.x * D;
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += r[k] * r[k];
  const float n = sqrtf(detail::block_sum(s, scratch)), c = n + kPktEps;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) x[blockIdx.x * D + k] = r[k] / c;
  if (threadIdx.x == 0) norms[blockIdx.x] = n;
}

// PKT, one block per row i of the cosine matrices: Q = P / rowsum(P) with P = (M + 1) / 2, the row's KL terms, and
// dM (nullable).
__global__ void pkt_rows_kernel(int64_t N, float inv, const float* __restrict__ Ms, const float* __restrict__ Mt,
                                float* __restrict__ dM, float* __restrict__ per_row) {
  __shared__ float scratch[32];
  const float* ms = Ms + blockIdx.x * N;
  const float* mt = Mt + blockIdx.x * N;
  float rs = 0.0f, rt = 0.0f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) rs += (ms[j] + 1.0f) * 0.5f, rt += (mt[j] + 1.0f) * 0.5f;
  rs = detail::block_sum(rs, scratch);
  rt = detail::block_sum(rt, scratch);
  float loss = 0.0f, dot = 0.0f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const float qs = (ms[j] + 1.0f) * 0.5f / rs, qt = (mt[j] + 1.0f) * 0.5f / rt;
    loss += qt * logf((qt + kPktEps) / (qs + kPktEps));
    dot += -qt / (qs + kPktEps) * inv * qs;
  }
  loss = detail::block_sum(loss, scratch);
  dot = detail::block_sum(dot, scratch);
  if (threadIdx.x == 0) per_row[blockIdx.x] = loss;
  if (!dM) return;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    const float qs = (ms[j] + 1.0f) * 0.5f / rs, qt = (mt[j] + 1.0f) * 0.5f / rt;
    dM[blockIdx.x * N + j] = (-qt / (qs + kPktEps) * inv - dot) / rs * 0.5f;
  }
}

// ds = dx / (n + eps) - s <s, dx> / (n (n + eps)^2), in place over dx; one block per row.
__global__ void pkt_unit_rows_backward_kernel(int64_t D, const float* __restrict__ f, const float* __restrict__ norms,
                                              float* __restrict__ dx) {
  __shared__ float scratch[32];
  const float* r = f + blockIdx.x * D;
  float* g = dx + blockIdx.x * D;
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += r[k] * g[k];
  s = detail::block_sum(s, scratch);
  const float n = norms[blockIdx.x], c = n + kPktEps, k2 = n > 0.0f ? s / (n * c * c) : 0.0f;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) g[k] = g[k] / c - r[k] * k2;
}

// loss[0] = scale * (the ordered double sum of the n partials).
__global__ void sum_rows_kernel(int64_t n, const float* __restrict__ partial, double scale, float* __restrict__ loss) {
  if (threadIdx.x != 0) return;
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += partial[i];
  loss[0] = static_cast<float>(s * scale);
}

void check_sizes(const char* op, int64_t N, int64_t Ds, int64_t Dt) {
  ISLKD_CHECK(N >= 1 && Ds >= 1 && Dt >= 1, op, ": empty features (N ", N, ", D ", Ds, "/", Dt, ")");
  ISLKD_CHECK(N <= 46340, op, ": a batch of ", N, " exceeds one launch's grid of N x N blocks");
}

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(ceil_div(n, kThreads), 4096)); }

}  // namespace

void sp_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                              float* dstudent, float* loss) {
  check_sizes("sp_loss", N, Ds, Dt);
  detail::DeviceTemp<float> Gs(N * N), Gt(N * N), dG(dstudent ? N * N : 0), per(N);
  const unsigned pairs = static_cast<unsigned>(N * N), rows = static_cast<unsigned>(N);
  ISLKD_LAUNCH(gram_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Ds, student, Gs.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(gram_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Dt, teacher, Gt.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  const float inv = static_cast<float>(1.0 / static_cast<double>(N * N));
  ISLKD_LAUNCH(sp_rows_kernel, dim3(rows), dim3(kThreads), 0, compute_stream(), N, inv, Gs.get(), Gt.get(),
               dG.get(), per.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(sum_rows_kernel, dim3(1), dim3(32), 0, compute_stream(), N, per.get(), static_cast<double>(inv), loss);
  ISLKD_CUDA_CHECK_LAUNCH();
  if (!dstudent) return;
  ISLKD_LAUNCH(gram_backward_kernel, dim3(grid_for(N * Ds)), dim3(kThreads), 0, compute_stream(), N, Ds, student,
               dG.get(), dstudent);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void pkt_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                               float* dstudent, float* loss) {
  check_sizes("pkt_loss", N, Ds, Dt);
  detail::DeviceTemp<float> xs(N * Ds), xt(N * Dt), ns(N), nt(N), Ms(N * N), Mt(N * N), dM(dstudent ? N * N : 0),
      per(N);
  const unsigned pairs = static_cast<unsigned>(N * N), rows = static_cast<unsigned>(N);
  ISLKD_LAUNCH(pkt_unit_rows_kernel, dim3(rows), dim3(kThreads), 0, compute_stream(), Ds, student, xs.get(), ns.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(pkt_unit_rows_kernel, dim3(rows), dim3(kThreads), 0, compute_stream(), Dt, teacher, xt.get(), nt.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(gram_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Ds, xs.get(), Ms.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(gram_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Dt, xt.get(), Mt.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  const float inv = static_cast<float>(1.0 / static_cast<double>(N * N));
  ISLKD_LAUNCH(pkt_rows_kernel, dim3(rows), dim3(kThreads), 0, compute_stream(), N, inv, Ms.get(), Mt.get(),
               dM.get(), per.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(sum_rows_kernel, dim3(1), dim3(32), 0, compute_stream(), N, per.get(), static_cast<double>(inv), loss);
  ISLKD_CUDA_CHECK_LAUNCH();
  if (!dstudent) return;
  ISLKD_LAUNCH(gram_backward_kernel, dim3(grid_for(N * Ds)), dim3(kThreads), 0, compute_stream(), N, Ds, xs.get(),
               dM.get(), dstudent);
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(pkt_unit_rows_backward_kernel, dim3(rows), dim3(kThreads), 0, compute_stream(), Ds, student, ns.get(),
               dstudent);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
