// CUDA cross-entropy from logits fused with its gradient, same semantics as kernels/cpu/cross_entropy.cpp:
// per row loss = logsumexp(x) - x[label] (max-shifted), dlogits = (softmax - onehot) / rows, and the mean over
// rows returned to the host. Also home of summarize_row_losses (row_losses.cuh), the second stage every loss
// kernel here shares.
//
// Work split: one warp per row (8 rows per block): logits rows are short (C = 10..1000), a warp reads them
// coalesced and reduces with shuffles, no shared memory. Three sweeps (max, sum of exp, gradient); the second and
// third hit L1/L2, so DRAM traffic is 4 bytes read + 4 written per logit.
// Determinism: the kernel writes per-row losses; a second one-block kernel adds them in double with a fixed tree
// (no float atomics), so the mean is the same on every run; it also finds the first label outside [0, C).
// The per-row kernel guards its reads with the label check (a bad label drops the one-hot term instead of reading
// out of bounds); the launcher then throws islkd::Error naming the row, as the CPU version does. Unlike the CPU,
// the outputs have been written by then: callers must not use them after the exception.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/row_losses.cuh"

namespace islkd::cuda {

namespace {

// 8 warps (rows) per block: a 128-row batch is 16 blocks.
constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;
// The summary stage is one block: 256 threads each add rows/256 values, then a shuffle tree.
constexpr int kSummaryThreads = 256;

__global__ void cross_entropy_kernel(int64_t rows, int64_t cols, float inv_rows, const float* __restrict__ logits,
                                     const int32_t* __restrict__ labels, float* __restrict__ row_loss,
                                     float* __restrict__ dlogits) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / 32;
  const unsigned lane = threadIdx.x & 31u;
  if (r < rows) {  // uniform per warp
    const float* xr = logits + r * cols;
    const int32_t label = labels[r];
    const bool valid = label >= 0 && label < cols;
    float mx = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) mx = fmaxf(mx, xr[c]);
    mx = detail::warp_max(mx);
    float sum = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) sum += expf(xr[c] - mx);
    const float lse = mx + logf(detail::warp_sum(sum));
    if (lane == 0) row_loss[r] = valid ? lse - xr[label] : NAN;
    if (dlogits) {
      float* dr = dlogits + r * cols;
      for (int64_t c = lane; c < cols; c += 32)
        dr[c] = (expf(xr[c] - lse) - (c == label ? 1.0f : 0.0f)) * inv_rows;
    }
  }
}

__global__ void summarize_kernel(int64_t rows, int64_t cols, const int32_t* __restrict__ labels,
                                 const float* __restrict__ a, const float* __restrict__ b,
                                 detail::RowLossSummary* __restrict__ out) {
  __shared__ double scratch_d[32];
  __shared__ long long scratch_i[32];
  double sa = 0.0, sb = 0.0;
  long long bad = rows;  // "none" sorts after every real row
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    if (a) sa += a[r];
    if (b) sb += b[r];
    if (bad == rows && (labels[r] < 0 || labels[r] >= cols)) bad = r;  // strided rows ascend: first is smallest
  }
  sa = detail::block_sum(sa, scratch_d);
  sb = detail::block_sum(sb, scratch_d);
  bad = detail::block_reduce(bad, static_cast<long long>(rows), scratch_i, detail::MinOp());
  if (threadIdx.x == 0) {
    out->sum_a = sa;
    out->sum_b = sb;
    out->bad_row = bad < rows ? bad : -1;
    out->bad_label = bad < rows ? labels[bad] : 0;
  }
}

}  // namespace

namespace detail {

void summarize_row_losses_on_device(int64_t rows, int64_t cols, const int32_t* labels, const float* a,
                                    const float* b, RowLossSummary* out) {
  ISLKD_LAUNCH(summarize_kernel, dim3(1), dim3(kSummaryThreads), 0, compute_stream(), rows, cols, labels, a, b, out);
  ISLKD_CUDA_CHECK_LAUNCH();
}

RowLossSummary summarize_row_losses(int64_t rows, int64_t cols, const int32_t* labels, const float* a,
                                    const float* b) {
  RowLossSummary host;
  if (rows <= 0) return host;
  DeviceTemp<RowLossSummary> dev(1);
  summarize_row_losses_on_device(rows, cols, labels, a, b, dev.get());
  // Read back through a pinned buffer (a pageable destination would be staged by the driver; this is the one
  // host wait of a loss call). One buffer per thread, never freed (freeing at exit could outlive the runtime).
  thread_local RowLossSummary* pinned = static_cast<RowLossSummary*>(pinned_host_malloc(sizeof(RowLossSummary)));
  memcpy_d2h(pinned, dev.get(), sizeof host);
  host = *pinned;
  return host;
}

}  // namespace detail

float cross_entropy_forward_backward(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                     float* row_loss, float* dlogits) {
  if (rows <= 0) return 0.0f;
  ISLKD_CHECK(cols >= 1, "cross_entropy: needs at least one class, got ", rows, " x ", cols);
  detail::DeviceTemp<float> own_loss(row_loss ? 0 : rows);
  float* losses = row_loss ? row_loss : own_loss.get();
  ISLKD_LAUNCH(cross_entropy_kernel, dim3(static_cast<unsigned>(ceil_div(rows, kRowsPerBlock))), dim3(kThreads), 0,
               compute_stream(), rows, cols, static_cast<float>(1.0 / static_cast<double>(rows)), logits, labels,
               losses, dlogits);
  ISLKD_CUDA_CHECK_LAUNCH();
  const detail::RowLossSummary sum = detail::summarize_row_losses(rows, cols, labels, losses, nullptr);
  ISLKD_CHECK(sum.bad_row < 0, "cross_entropy: label ", sum.bad_label, " of row ", sum.bad_row,
              " is out of range [0, ", cols, ")");
  return static_cast<float>(sum.sum_a / static_cast<double>(rows));
}

}  // namespace islkd::cuda
