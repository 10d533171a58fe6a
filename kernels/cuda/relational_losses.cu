// The relational distillation losses on CUDA: similarity preserving (SP), probabilistic knowledge transfer (PKT) and
// relational KD (RKD) over a batch of flattened features. Same semantics as kernels/cpu/relational_losses.cpp (the derivation is there).
//
// Work split: the N x N relation matrices are small (N is the batch), the features are not (SP's feat[-2] of a
// resnet32x4 is 8192 floats per instance). So: one block per (i, j) forms <f_i, f_j> (a block sum over D: each
// feature row is read N times, coalesced), one block per row i does the row-wise normalisation, the loss and the
// relation gradient, and a grid-stride loop forms df_ik = sum_j (dG_ij + dG_ji) f_jk (N reads per element). Row
// losses are added by one finishing thread in order in double, so the loss is the same on every run (no float
// atomics). ~2N reads of each feature element forward + backward: for batch 64 this is compute-light next to a
// step's convolutions.
// RKD adds the angle term: the N x N unit differences e_ij (one block each, N^2 D floats of temporaries per model),
// one thread per (i, j, k) forms A_ijk = <e_ij, e_ik> (N^3 D multiply-adds: for batch 64 and 256-d pooled vectors
// ~67 MFLOP per model, no concern next to the convolutions), one thread per (i, j, x) forms de_ij, one block per
// (i, j) takes it through the normalisation, and a gather (no atomics) df_a = sum_i dv_ia - sum_j dv_aj.
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

namespace {

constexpr float kPdistEps = 1e-12f;  // RKD.py pdist(eps=1e-12)

__device__ float smooth_l1(float x) { return fabsf(x) < 1.0f ? 0.5f * x * x : fabsf(x) - 0.5f; }
__device__ float smooth_l1_grad(float x) { return fabsf(x) < 1.0f ? x : (x > 0.0f ? 1.0f : -1.0f); }

// The distance term in one block from the two Gram matrices: part[0] = w_d L_d, dc (nullable) = dL/dc_ij.
__global__ void rkd_distance_kernel(int64_t N, float w_d, const float* __restrict__ Gs, const float* __restrict__ Gt,
                                    float* __restrict__ dc, float* __restrict__ part) {
  __shared__ float scratch[32];
  auto dist = [N](const float* G, int64_t i, int64_t j) {
    return sqrtf(fmaxf(G[i * N + i] + G[j * N + j] - 2.0f * G[i * N + j], kPdistEps));
  };
  float ss = 0.0f, st = 0.0f;
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    const int64_t i = e / N, j = e % N;
    if (i != j) ss += dist(Gs, i, j), st += dist(Gt, i, j);
  }
  const float cnt = static_cast<float>(N * (N - 1));
  const float ms = detail::block_sum(ss, scratch) / cnt, mt = detail::block_sum(st, scratch) / cnt;
  const float inv2 = 1.0f / static_cast<float>(N * N);
  float loss = 0.0f, gd = 0.0f;
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    const int64_t i = e / N, j = e % N;
    if (i == j) continue;
    const float d = dist(Gs, i, j), x = d / ms - dist(Gt, i, j) / mt;
    loss += smooth_l1(x);
    gd += w_d * smooth_l1_grad(x) * inv2 * d;
  }
  loss = detail::block_sum(loss, scratch);
  gd = detail::block_sum(gd, scratch);
  if (threadIdx.x == 0) part[0] = w_d * loss * inv2;
  if (!dc) return;
  for (int64_t e = threadIdx.x; e < N * N; e += blockDim.x) {
    const int64_t i = e / N, j = e % N;
    const float c = Gs[i * N + i] + Gs[j * N + j] - 2.0f * Gs[i * N + j];
    float v = 0.0f;
    if (i != j && c >= kPdistEps) {
      const float d = dist(Gs, i, j), x = d / ms - dist(Gt, i, j) / mt;
      v = (w_d * smooth_l1_grad(x) * inv2 / ms - gd / (ms * ms * cnt)) / (2.0f * d);
    }
    dc[e] = v;
  }
}

// df_ak = 2 sum_j (dc_aj + dc_ja) (f_ak - f_jk).
__global__ void rkd_distance_backward_kernel(int64_t N, int64_t D, const float* __restrict__ f,
                                             const float* __restrict__ dc, float* __restrict__ df) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < N * D;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t a = e / D, k = e % D;
    float s = 0.0f;
    for (int64_t j = 0; j < N; ++j) s += (dc[a * N + j] + dc[j * N + a]) * (f[e] - f[j * D + k]);
    df[e] = 2.0f * s;
  }
}

// e_ij = normalize(f_j - f_i), norms[ij] = max(|f_j - f_i|, eps) (negative when under eps); one block per (i, j).
__global__ void rkd_unit_differences_kernel(int64_t N, int64_t D, const float* __restrict__ f, float* __restrict__ e,
                                            float* __restrict__ norms) {
  __shared__ float scratch[32];
  const int64_t i = blockIdx.x / N, j = blockIdx.x % N;
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    const float v = f[j * D + k] - f[i * D + k];
    s += v * v;
  }
  const float n = sqrtf(detail::block_sum(s, scratch)), d = fmaxf(n, kNormalizeEps);
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) e[blockIdx.x * D + k] = (f[j * D + k] - f[i * D + k]) / d;
  if (threadIdx.x == 0) norms[blockIdx.x] = n > kNormalizeEps ? d : -d;
}

// One thread per (i, j, k): the angle's smooth-L1 term (block partial sums) and gA (nullable).
__global__ void rkd_angle_kernel(int64_t N, int64_t Ds, int64_t Dt, float w_a, const float* __restrict__ es,
                                 const float* __restrict__ et, float* __restrict__ gA, float* __restrict__ partial) {
  __shared__ float scratch[32];
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  float loss = 0.0f;
  if (e < N * N * N) {
    const int64_t i = e / (N * N), j = (e / N) % N, k = e % N;
    const float* a = es + (i * N + j) * Ds;
    const float* b = es + (i * N + k) * Ds;
    const float* c = et + (i * N + j) * Dt;
    const float* d = et + (i * N + k) * Dt;
    float x = 0.0f, y = 0.0f;
    for (int64_t q = 0; q < Ds; ++q) x += a[q] * b[q];
    for (int64_t q = 0; q < Dt; ++q) y += c[q] * d[q];
    loss = smooth_l1(x - y);
    if (gA) gA[e] = w_a * smooth_l1_grad(x - y) / static_cast<float>(N * N * N);
  }
  loss = detail::block_sum(loss, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = loss;
}

// de_ij[x] = sum_k (gA_ijk + gA_ikj) e_ik[x]; one thread per (i, j, x).
__global__ void rkd_angle_backward_kernel(int64_t N, int64_t D, const float* __restrict__ e,
                                          const float* __restrict__ gA, float* __restrict__ de) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < N * N * D;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ij = t / D, x = t % D, i = ij / N, j = ij % N;
    float s = 0.0f;
    for (int64_t k = 0; k < N; ++k)
      s += (gA[(i * N + j) * N + k] + gA[(i * N + k) * N + j]) * e[(i * N + k) * D + x];
    de[t] = s;
  }
}

// dv_ij = (de - e <e, de>) / n (de / eps under eps), in place; one block per (i, j).
__global__ void rkd_normalize_backward_kernel(int64_t D, const float* __restrict__ e, const float* __restrict__ norms,
                                              float* __restrict__ de) {
  __shared__ float scratch[32];
  const float* y = e + blockIdx.x * D;
  float* g = de + blockIdx.x * D;
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += y[k] * g[k];
  s = detail::block_sum(s, scratch);
  const float n = norms[blockIdx.x];
  const float dot = n > 0.0f ? s : 0.0f, d = fabsf(n);
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) g[k] = (g[k] - y[k] * dot) / d;
}

// df_ak += sum_i dv_ia - sum_j dv_aj.
__global__ void rkd_angle_gather_kernel(int64_t N, int64_t D, const float* __restrict__ dv, float* __restrict__ df) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < N * D;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t a = t / D, x = t % D;
    float s = 0.0f;
    for (int64_t i = 0; i < N; ++i) s += dv[(i * N + a) * D + x] - dv[(a * N + i) * D + x];
    df[t] += s;
  }
}

// loss[0] = distance part + w_a * (ordered double sum of the angle partials) / N^3.
__global__ void rkd_finish_kernel(int64_t n, const float* __restrict__ partial, const float* __restrict__ part_d,
                                  double scale, float* __restrict__ loss) {
  if (threadIdx.x != 0) return;
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += partial[i];
  loss[0] = static_cast<float>(static_cast<double>(part_d[0]) + s * scale);
}

__global__ void fill_kernel(int64_t n, float v, float* __restrict__ out) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[e] = v;
}

}  // namespace

void rkd_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                               float w_d, float w_a, float* dstudent, float* loss) {
  check_sizes("rkd_loss", N, Ds, Dt);
  ISLKD_CHECK(N <= 2048, "rkd_loss: a batch of ", N, " exceeds the N^3 angle threads' grid");
  if (N < 2) {  // no pairs: loss and gradient 0 (upstream: NaN from an empty mean)
    ISLKD_LAUNCH(fill_kernel, dim3(1), dim3(32), 0, compute_stream(), int64_t{1}, 0.0f, loss);
    ISLKD_CUDA_CHECK_LAUNCH();
    if (dstudent) {
      ISLKD_LAUNCH(fill_kernel, dim3(grid_for(N * Ds)), dim3(kThreads), 0, compute_stream(), N * Ds, 0.0f, dstudent);
      ISLKD_CUDA_CHECK_LAUNCH();
    }
    return;
  }
  const unsigned pairs = static_cast<unsigned>(N * N);
  const int64_t triples = N * N * N, angle_blocks = ceil_div(triples, kThreads);
  detail::DeviceTemp<float> Gs(N * N), Gt(N * N), dc(dstudent ? N * N : 0), part_d(1), es(N * N * Ds),
      et(N * N * Dt), ns(N * N), nt(N * N), gA(dstudent ? triples : 0), partial(angle_blocks),
      de(dstudent ? N * N * Ds : 0);
  ISLKD_LAUNCH(gram_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Ds, student, Gs.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(gram_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Dt, teacher, Gt.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_distance_kernel, dim3(1), dim3(kThreads), 0, compute_stream(), N, w_d, Gs.get(), Gt.get(),
               dc.get(), part_d.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_unit_differences_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Ds, student,
               es.get(), ns.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_unit_differences_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), N, Dt, teacher,
               et.get(), nt.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_angle_kernel, dim3(static_cast<unsigned>(angle_blocks)), dim3(kThreads), 0, compute_stream(), N,
               Ds, Dt, w_a, es.get(), et.get(), gA.get(), partial.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_finish_kernel, dim3(1), dim3(32), 0, compute_stream(), angle_blocks, partial.get(), part_d.get(),
               static_cast<double>(w_a) / static_cast<double>(triples), loss);
  ISLKD_CUDA_CHECK_LAUNCH();
  if (!dstudent) return;
  ISLKD_LAUNCH(rkd_distance_backward_kernel, dim3(grid_for(N * Ds)), dim3(kThreads), 0, compute_stream(), N, Ds,
               student, dc.get(), dstudent);
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_angle_backward_kernel, dim3(grid_for(N * N * Ds)), dim3(kThreads), 0, compute_stream(), N, Ds,
               es.get(), gA.get(), de.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_normalize_backward_kernel, dim3(pairs), dim3(kThreads), 0, compute_stream(), Ds, es.get(),
               ns.get(), de.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  ISLKD_LAUNCH(rkd_angle_gather_kernel, dim3(grid_for(N * Ds)), dim3(kThreads), 0, compute_stream(), N, Ds, de.get(),
               dstudent);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
