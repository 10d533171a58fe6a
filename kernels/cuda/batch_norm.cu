// CUDA batch norm over NCHW (statistics per channel over N*H*W): training forward, eval forward, backward.
// Same semantics as kernels/cpu/batch_norm.cpp: biased variance for normalisation, unbiased for running_var.
//
// Work split: many blocks per channel. A channel's count = N*HW values (N planes of HW, C*HW apart) are cut into
// S contiguous slices of L values; the grid is (S, C), S chosen so that about kTargetBlocks blocks run (an H200
// has 132 SMs; one block per channel gave 16-64 blocks, a tenth of the machine) while each thread still gets at
// least kMinPerThread values. Two launches per direction:
//   training forward  1. per slice: its mean, then the sum of squared deviations from it (two passes over the
//                        slice, the second from L1/L2: no cancellation when |mean| >> std), into a [C][S] table;
//                     2. every block combines its channel's S partials (Chan's parallel formula, in double, in
//                        slice order: all blocks get the same bits, no atomics, no third launch), normalises its
//                        slice; block 0 of a channel writes save_mean / save_invstd and the running statistics.
//   backward          1. per slice: sum dy and sum dy*(x - mean); 2. every block adds the S partials (double,
//                        slice order), writes dx for its slice; block 0 writes dgamma and dbeta.
//   eval forward      elementwise over N*C*HW.
// Index math: value j of a channel is at ((j / HW) * C + c) * HW + j % HW; j / HW is a 32-bit multiply-high and
// shift by a divisor prepared on the host (Divider: Granlund-Montgomery, as PyTorch's IntDivider), not a 64-bit
// divide per element (~70 instructions on a GPU). So a channel holds < 2^31 values (checked); eval launches are
// cut along N to keep each launch's index below 2^31.
//
// Napkin math (H200: 4.8 TB/s HBM, 50 MiB L2). Training forward reads x three times and writes y once, 16 B per
// value, of which the slice re-read comes from L2 (a slice is L*4 B, <= a few KiB per block), so ~12 B/value
// from HBM: resnet20's first BN, x = 128x16x32x32 (8 MiB), moves ~25 MB, ~5 us at peak (+ two launches, ~4 us).
// Backward reads x and dy twice and writes dx: 20 B/value, ~16 from HBM. Eval: 8 B/value. All memory-bound; the
// previous one-block-per-channel kernel ran 16 blocks on 132 SMs for that layer (~10% of the bandwidth at best).
// Statistics: per-thread float partials of <= L/256 values, block sums in float, slices combined in double; the
// CPU adds plane sums in double: within 1e-5 relative for the batches we train.
// Backward overwrites dgamma, dbeta and dx (=), like every backward here; dx may be null.
// Synchronised (--sync-bn, kernels/common/batch_norm_sync.h): between the two launches the [C][S] partials come to
// the host (8*C*S bytes), are combined per channel there (the same Chan merge / slice-order sums in double as the
// second kernel), combined with the other replicas' over MPI, and go back as a per-channel table that the second
// kernel reads instead of the partials (dgamma and dbeta still from this replica's partials). A host round trip
// per BN layer and direction: correct, not fast (an NCCL all-reduce on the device would keep it on the GPU).
#include <algorithm>
#include <climits>
#include <vector>

#include "kernels/common/batch_norm_sync.h"

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"
#include "kernels/cuda/reduce.cuh"

namespace islkd::cuda {

namespace {

// 256 threads = 8 warps per block, a multiple of 32 as block_sum requires.
constexpr int kThreads = 256;
// About 8 blocks per SM of a 132-SM GPU: enough to hide latency, few enough that each block has work.
constexpr int64_t kTargetBlocks = 1024;
// Fewer values per thread than this and the slice's launch and combine cost more than they save.
constexpr int64_t kMinPerThread = 8;
constexpr int64_t kMaxSlices = 128;

// n / d for n < 2^31 by a multiply-high, an add and a shift (d >= 1, prepared once on the host).
struct Divider {
  uint32_t d = 1, magic = 1, shift = 0;
};

Divider make_divider(int64_t d) {
  Divider v;
  v.d = static_cast<uint32_t>(d);
  while ((uint64_t(1) << v.shift) < v.d) ++v.shift;
  v.magic = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << v.shift) - v.d)) / v.d + 1);
  return v;
}

__device__ __forceinline__ uint32_t divide(const Divider& v, uint32_t n) {
  return (__umulhi(n, v.magic) + n) >> v.shift;
}

// Where value j (< 2^31) of channel c lies.
__device__ __forceinline__ int64_t offset(const Divider& hw, int64_t C, int64_t c, int64_t j) {
  const uint32_t n = divide(hw, static_cast<uint32_t>(j));
  return (static_cast<int64_t>(n) * C + c) * hw.d + (j - static_cast<int64_t>(n) * hw.d);
}

struct Slicing {
  int64_t slices = 1, per_slice = 1;
};

Slicing slicing(int64_t C, int64_t count) {
  int64_t s = std::max<int64_t>(1, kTargetBlocks / C);
  s = std::min(s, std::max<int64_t>(1, count / (kThreads * kMinPerThread)));
  s = std::min(s, kMaxSlices);
  Slicing r;
  r.per_slice = ceil_div(count, s);
  r.slices = ceil_div(count, r.per_slice);  // no empty slice
  return r;
}

__global__ void bn_slice_stats_kernel(int64_t C, Divider hw, int64_t per_slice, int64_t count,
                                      const float* __restrict__ x, float* __restrict__ part_mean,
                                      float* __restrict__ part_m2) {
  __shared__ float scratch[32];
  const int64_t s = blockIdx.x, c = blockIdx.y, S = gridDim.x;
  const int64_t begin = s * per_slice, end = begin + per_slice < count ? begin + per_slice : count;
  float sum = 0.0f;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) sum += x[offset(hw, C, c, j)];
  const float mean = detail::block_sum(sum, scratch) / static_cast<float>(end - begin);
  float sq = 0.0f;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const float d = x[offset(hw, C, c, j)] - mean;
    sq += d * d;
  }
  sq = detail::block_sum(sq, scratch);
  if (threadIdx.x == 0) {
    part_mean[c * S + s] = mean;
    part_m2[c * S + s] = sq;
  }
}

__global__ void bn_normalize_train_kernel(int64_t C, Divider hw, int64_t per_slice, int64_t count,
                                          const float* __restrict__ x, const float* __restrict__ gamma,
                                          const float* __restrict__ beta, const float* __restrict__ part_mean,
                                          const float* __restrict__ part_m2, float* __restrict__ running_mean,
                                          float* __restrict__ running_var, float momentum, float eps,
                                          float* __restrict__ y, float* __restrict__ save_mean,
                                          float* __restrict__ save_invstd, const double* __restrict__ given) {
  __shared__ float stats[2];
  const int64_t s = blockIdx.x, c = blockIdx.y, S = gridDim.x, C_ = gridDim.y;
  if (threadIdx.x == 0) {
    // Chan et al.: merge (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b), slices in order. given (--sync-bn): every
    // replica's [mean (C), M2 (C), count], combined on the host.
    double n = 0.0, mean = 0.0, m2 = 0.0;
    if (given) {
      mean = given[c], m2 = given[C_ + c], n = given[2 * C_];
    } else {
      for (int64_t k = 0; k < S; ++k) {
        const double nb = static_cast<double>((k + 1) * per_slice < count ? per_slice : count - k * per_slice);
        const double mb = part_mean[c * S + k], delta = mb - mean, total = n + nb;
        mean += delta * (nb / total);
        m2 += part_m2[c * S + k] + delta * delta * (n * nb / total);
        n = total;
      }
    }
    const double var = m2 / n;
    const float invstd = rsqrtf(static_cast<float>(var) + eps);
    stats[0] = static_cast<float>(mean);
    stats[1] = invstd;
    if (s == 0) {
      save_mean[c] = static_cast<float>(mean);
      save_invstd[c] = invstd;
      // PyTorch's running_var takes the unbiased estimate; with one value per channel there is none.
      const float unbiased = static_cast<float>(n > 1.0 ? m2 / (n - 1.0) : var);
      running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * static_cast<float>(mean);
      running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
    }
  }
  __syncthreads();
  const float mean = stats[0], a = stats[1] * gamma[c], b = beta[c];
  const int64_t begin = s * per_slice, end = begin + per_slice < count ? begin + per_slice : count;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t off = offset(hw, C, c, j);
    y[off] = (x[off] - mean) * a + b;
  }
}

// Values [0, total) of one launch (total < 2^31); the channel of value i is (i / HW) % C.
__global__ void bn_forward_eval_kernel(int64_t total, Divider hw, Divider channels, const float* __restrict__ x,
                                       const float* __restrict__ gamma, const float* __restrict__ beta,
                                       const float* __restrict__ running_mean,
                                       const float* __restrict__ running_var, float eps, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t plane = divide(hw, static_cast<uint32_t>(i));
    const uint32_t c = plane - divide(channels, plane) * channels.d;
    const float a = rsqrtf(running_var[c] + eps) * gamma[c];
    y[i] = (x[i] - running_mean[c]) * a + beta[c];
  }
}

__global__ void bn_slice_grad_sums_kernel(int64_t C, Divider hw, int64_t per_slice, int64_t count,
                                          const float* __restrict__ x, const float* __restrict__ dy,
                                          const float* __restrict__ save_mean, float* __restrict__ part_dy,
                                          float* __restrict__ part_dy_xc) {
  __shared__ float scratch[32];
  const int64_t s = blockIdx.x, c = blockIdx.y, S = gridDim.x;
  const int64_t begin = s * per_slice, end = begin + per_slice < count ? begin + per_slice : count;
  const float mean = save_mean[c];
  float sd = 0.0f, sx = 0.0f;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t off = offset(hw, C, c, j);
    sd += dy[off];
    sx += dy[off] * (x[off] - mean);
  }
  sd = detail::block_sum(sd, scratch);
  sx = detail::block_sum(sx, scratch);
  if (threadIdx.x == 0) {
    part_dy[c * S + s] = sd;
    part_dy_xc[c * S + s] = sx;
  }
}

// dx = k*dy + a*(x - mean) + b with k = gamma*invstd, a = -k*invstd^2*mean(dy*xc), b = -k*mean(dy).
__global__ void bn_backward_dx_kernel(int64_t C, Divider hw, int64_t S, int64_t per_slice, int64_t count,
                                      const float* __restrict__ x, const float* __restrict__ dy,
                                      const float* __restrict__ gamma, const float* __restrict__ save_mean,
                                      const float* __restrict__ save_invstd, const float* __restrict__ part_dy,
                                      const float* __restrict__ part_dy_xc, float* __restrict__ dx,
                                      float* __restrict__ dgamma, float* __restrict__ dbeta,
                                      const double* __restrict__ given) {
  __shared__ float sums[2];
  const int64_t s = blockIdx.x, c = blockIdx.y, C_ = gridDim.y;  // S slices of partials (1 column without dx)
  const float mean = save_mean[c], invstd = save_invstd[c];
  if (threadIdx.x == 0) {
    double sd = 0.0, sx = 0.0;
    for (int64_t k = 0; k < S; ++k) sd += part_dy[c * S + k], sx += part_dy_xc[c * S + k];
    // given (--sync-bn): every replica's [sum dy (C), sum dy*xc (C), count] for dx; dgamma, dbeta stay this one's.
    sums[0] = static_cast<float>(given ? given[c] : sd);
    sums[1] = static_cast<float>(given ? given[C_ + c] : sx);
    if (s == 0) {
      dbeta[c] = static_cast<float>(sd);
      dgamma[c] = static_cast<float>(sx) * invstd;
    }
  }
  if (dx == nullptr) return;  // every thread of the grid takes the same branch: no barrier is skipped by some
  __syncthreads();
  const float inv_count = 1.0f / static_cast<float>(given ? given[2 * C_] : static_cast<double>(count));
  const float k = gamma[c] * invstd;
  const float a = -k * (sums[1] * inv_count) * invstd * invstd;
  const float b = -k * (sums[0] * inv_count);
  const int64_t begin = s * per_slice, end = begin + per_slice < count ? begin + per_slice : count;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t off = offset(hw, C, c, j);
    dx[off] = k * dy[off] + a * (x[off] - mean) + b;
  }
}

void check_sizes(const char* op, int64_t N, int64_t C, int64_t HW) {
  ISLKD_CHECK(N * HW <= INT_MAX && C <= 65535, op, ": a channel of ", N * HW, " values (N=", N, ", HW=", HW,
              ") or ", C, " channels exceed the CUDA kernel's limits (< 2^31 values, <= 65535 channels)");
}

}  // namespace

void batch_norm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                              const float* beta, float* running_mean, float* running_var, float momentum,
                              float eps, float* y, float* save_mean, float* save_invstd, BatchNormSync* sync) {
  if (C == 0 || N * HW == 0) return;
  check_sizes("batch_norm_forward_train", N, C, HW);
  const int64_t count = N * HW;
  const Slicing sl = slicing(C, count);
  detail::DeviceTemp<float> part(2 * C * sl.slices);
  const dim3 grid(static_cast<unsigned>(sl.slices), static_cast<unsigned>(C));
  const Divider hw = make_divider(HW);
  ISLKD_LAUNCH(bn_slice_stats_kernel, grid, dim3(kThreads), 0, compute_stream(), C, hw, sl.per_slice, count, x,
               part.get(), part.get() + C * sl.slices);
  ISLKD_CUDA_CHECK_LAUNCH();
  detail::DeviceTemp<double> given(sync ? 2 * C + 1 : 0);
  if (sync) {
    const int64_t S = sl.slices;
    std::vector<float> host(static_cast<size_t>(2 * C * S));
    memcpy_d2h(host.data(), part.get(), host.size() * sizeof(float));
    std::vector<double> table(static_cast<size_t>(2 * C + 1));
    for (int64_t c = 0; c < C; ++c) {  // the second kernel's merge, on the host
      double n = 0.0, mean = 0.0, m2 = 0.0;
      for (int64_t k = 0; k < S; ++k) {
        const double nb =
            static_cast<double>((k + 1) * sl.per_slice < count ? sl.per_slice : count - k * sl.per_slice);
        const double mb = host[static_cast<size_t>(c * S + k)], delta = mb - mean, total = n + nb;
        mean += delta * (nb / total);
        m2 += host[static_cast<size_t>(C * S + c * S + k)] + delta * delta * (n * nb / total);
        n = total;
      }
      table[c] = mean, table[C + c] = m2;
    }
    double n_all = static_cast<double>(count);
    sync_moments(*sync, C, n_all, table.data(), table.data() + C);
    table[2 * C] = n_all;
    memcpy_h2d(given.get(), table.data(), table.size() * sizeof(double));
  }
  ISLKD_LAUNCH(bn_normalize_train_kernel, grid, dim3(kThreads), 0, compute_stream(), C, hw, sl.per_slice, count,
               x, gamma, beta, part.get(), part.get() + C * sl.slices, running_mean, running_var, momentum, eps, y,
               save_mean, save_invstd, static_cast<const double*>(given.get()));
  ISLKD_CUDA_CHECK_LAUNCH();
}

void batch_norm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, float eps,
                             float* y) {
  if (N * C * HW == 0) return;
  const int64_t plane = C * HW;
  ISLKD_CHECK(plane <= INT_MAX, "batch_norm_forward_eval: one sample of ", plane, " values exceeds 2^31");
  const int64_t per_launch = std::max<int64_t>(1, INT_MAX / plane);  // samples per launch: index < 2^31
  const Divider hw = make_divider(HW), channels = make_divider(C);
  for (int64_t n0 = 0; n0 < N; n0 += per_launch) {
    const int64_t total = std::min(per_launch, N - n0) * plane;
    ISLKD_LAUNCH(bn_forward_eval_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0,
                 compute_stream(), total, hw, channels, x + n0 * plane, gamma, beta, running_mean, running_var, eps,
                 y + n0 * plane);
    ISLKD_CUDA_CHECK_LAUNCH();
  }
}

void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx, float* dgamma,
                         float* dbeta, BatchNormSync* sync) {
  if (C == 0 || N * HW == 0) return;
  check_sizes("batch_norm_backward", N, C, HW);
  const int64_t count = N * HW;
  const Slicing sl = slicing(C, count);
  detail::DeviceTemp<float> part(2 * C * sl.slices);
  const dim3 grid(static_cast<unsigned>(sl.slices), static_cast<unsigned>(C));
  const Divider hw = make_divider(HW);
  ISLKD_LAUNCH(bn_slice_grad_sums_kernel, grid, dim3(kThreads), 0, compute_stream(), C, hw, sl.per_slice, count,
               x, dy, save_mean, part.get(), part.get() + C * sl.slices);
  ISLKD_CUDA_CHECK_LAUNCH();
  detail::DeviceTemp<double> given(sync ? 2 * C + 1 : 0);
  if (sync) {
    const int64_t S = sl.slices;
    std::vector<float> host(static_cast<size_t>(2 * C * S));
    memcpy_d2h(host.data(), part.get(), host.size() * sizeof(float));
    std::vector<double> table(static_cast<size_t>(2 * C + 1));
    for (int64_t c = 0; c < C; ++c) {
      double sd = 0.0, sx = 0.0;
      for (int64_t k = 0; k < S; ++k) {
        sd += host[static_cast<size_t>(c * S + k)];
        sx += host[static_cast<size_t>(C * S + c * S + k)];
      }
      table[c] = sd, table[C + c] = sx;
    }
    table[2 * C] = static_cast<double>(count);
    sync_sums(*sync, 2 * C + 1, table.data());
    memcpy_h2d(given.get(), table.data(), table.size() * sizeof(double));
  }
  // Without dx only block 0 of each channel has work (dgamma, dbeta).
  const dim3 grid2 = dx ? grid : dim3(1u, static_cast<unsigned>(C));
  ISLKD_LAUNCH(bn_backward_dx_kernel, grid2, dim3(kThreads), 0, compute_stream(), C, hw, sl.slices, sl.per_slice,
               count, x,
               dy, gamma, save_mean, save_invstd, part.get(), part.get() + C * sl.slices, dx, dgamma, dbeta,
               static_cast<const double*>(given.get()));
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
