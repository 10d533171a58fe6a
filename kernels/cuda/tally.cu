// Training tallies kept on the device, so that a training step makes no host sync for its log line: per step the
// batch's mean loss times its rows, its count of right predictions (argmax of the logits, the first maximum wins,
// as app::count_correct on the host) and its rows are added to three doubles; the host reads them when it logs.
// Work split: one block of 256 threads; thread t scans rows t, t + 256, ... (a batch has at most a few thousand
// rows of at most ~1000 logits: a few hundred KiB read once, ~1 us at HBM speed, latency-bound); the counts are
// added by the fixed shuffle tree of reduce.cuh, so the tallies are the same bits on every run. acc is += (the
// host zeroes it after reading).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace islkd::cuda {
namespace {

constexpr int kThreads = 256;  // a multiple of 32 (block_sum); rows beyond 256 loop

__global__ void tally_kernel(int64_t rows, int64_t cols, const float* __restrict__ logits,
                             const int32_t* __restrict__ labels, const float* __restrict__ loss,
                             double* __restrict__ acc) {
  __shared__ double scratch[32];
  double correct = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const float* row = logits + r * cols;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c)
      if (row[c] > row[best]) best = c;
    correct += best == labels[r] ? 1.0 : 0.0;
  }
  correct = detail::block_sum(correct, scratch);
  if (threadIdx.x == 0) {
    acc[0] += static_cast<double>(loss[0]) * static_cast<double>(rows);
    acc[1] += correct;
    acc[2] += static_cast<double>(rows);
  }
}

}  // namespace

void tally_add(int64_t rows, int64_t cols, const float* logits, const int32_t* labels, const float* loss,
               double* acc) {
  ISLKD_CHECK(rows >= 0 && cols >= 1, "tally_add: needs rows >= 0 and cols >= 1, got ", rows, " x ", cols);
  if (rows == 0) return;
  ISLKD_LAUNCH(tally_kernel, dim3(1), dim3(kThreads), 0, compute_stream(), rows, cols, logits, labels, loss, acc);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
