// Fused Hinton knowledge-distillation loss on CUDA: loss, per-instance loss and dL/dstudent in one launch (plus a
// one-block summary launch for the means). Same semantics as kernels/cpu/kd_loss.cpp:
//   p^T = softmax(x / T),  p = softmax(s)
//   KD_row = T^2 * KL(p_t^T || p_s^T),  CE_row = -log p_y,  L_row = a * KD_row + (1 - a) * CE_row
//   dL/ds_j = (a * T * (p_s^T_j - p_t^T_j) + (1 - a) * (p_j - [j==y])) / N
//
// Work split: one block per row; 32 threads for C <= 32 (in effect a warp per row) up to 256 for C >= 256. The
// row statistics (maxima, three partition functions, the KL sum) come from one online sweep (kd_row.cuh): each
// thread keeps running-max partial sums over its strided elements, the block merges them with fixed trees.
// The gradient sweep then revisits the same elements with the same thread.
// Reading each logit once: for C <= 4096 (kStageMaxCols) the statistics sweep also stores the student and teacher
// row in dynamic shared memory (2 * 4 * C bytes, <= 32 KiB: no opt-in needed) and the gradient sweep reads them
// from there; above that the gradient sweep re-reads global memory, the "at most twice" case.
// Napkin math (C <= 4096): 8 bytes read per logit pair, 4 bytes of gradient written per logit, 6 exp per logit
// (3 per sweep; recomputing is cheaper than keeping 3*C exponentials on chip). Memory-bound for C >= ~100; for
// C = 10 the launch overhead dominates anyway.
// Numerics: every exponent is <= 0 and every log-probability is formed in log space, so logits of any magnitude
// stay finite. The CPU accumulates in double; here per-thread float partials of at most C/256 terms merged by a
// tree, within ~1e-5 relative of it for the C we use.
// Means: per-row KD and CE go to a temporary; summarize_row_losses adds them in double with a fixed tree (the
// same bits on every run, no float atomics) and finds the first out-of-range label, which throws islkd::Error
// naming the row like the CPU (the per-row kernel guards its label reads, so a bad label reads nothing out of
// bounds; the outputs are then garbage, which the exception tells the caller).
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/kd_row.cuh"
#include "kernels/cuda/row_losses.cuh"

namespace islkd::cuda {

namespace {

// Rows up to this many classes are staged in shared memory (student + teacher: 32 KiB at 4096).
constexpr int64_t kStageMaxCols = 4096;

template <bool kStaged>
__global__ void kd_loss_kernel(int64_t cols, float T, float alpha, float scale, const float* __restrict__ student,
                               const float* __restrict__ teacher, const int32_t* __restrict__ labels,
                               float* __restrict__ row_kd, float* __restrict__ row_ce, float* __restrict__ row_loss,
                               float* __restrict__ dstudent) {
  __shared__ float scratch[32];
  ISLKD_DYNAMIC_SHARED(float, stage);
  const int64_t r = blockIdx.x;
  const float* s = student + r * cols;
  const float* t = teacher + r * cols;
  const int32_t y = labels[r];
  const bool valid = y >= 0 && y < cols;
  const float invT = 1.0f / T;
  float* stage_s = kStaged ? stage : nullptr;
  float* stage_t = kStaged ? stage + cols : nullptr;
  const detail::KDRowStats st = detail::kd_row_stats<true>(cols, s, t, invT, stage_s, stage_t, scratch);
  if (threadIdx.x == 0) {
    const float kd = detail::kd_from_stats(st, T);
    const float ce = valid ? -detail::log_p_label(st, s[y]) : NAN;
    row_kd[r] = kd;
    row_ce[r] = ce;
    if (row_loss) row_loss[r] = alpha * kd + (1.0f - alpha) * ce;
  }
  if (dstudent) {
    const float ka = alpha * T, kc = 1.0f - alpha;
    const float izsT = 1.0f / st.zsT, iztT = 1.0f / st.ztT, izs = 1.0f / st.zs;
    float* g = dstudent + r * cols;
    // Same elements as the statistics sweep, same thread: the staged values need no barrier.
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float sv = kStaged ? stage_s[c] : s[c];
      const float tv = kStaged ? stage_t[c] : t[c];
      const float pt = expf((tv - st.mt) * invT) * iztT;
      const float psT = expf((sv - st.ms) * invT) * izsT;
      const float p = expf(sv - st.ms) * izs;
      g[c] = scale * (ka * (psT - pt) + kc * (p - (c == y ? 1.0f : 0.0f)));
    }
  }
}

// The means from the device summary: total, KD and CE (NaN when a label is out of range: nothing is thrown here).
__global__ void kd_loss_finish_kernel(const detail::RowLossSummary* __restrict__ sum, double rows, float alpha,
                                      float* __restrict__ loss, float* __restrict__ parts) {
  if (threadIdx.x != 0) return;
  const double kd = sum->sum_a / rows, ce = sum->sum_b / rows;
  const bool bad = sum->bad_row >= 0;
  loss[0] = bad ? NAN : static_cast<float>(static_cast<double>(alpha) * kd + (1.0 - static_cast<double>(alpha)) * ce);
  if (parts) {
    parts[0] = bad ? NAN : static_cast<float>(kd);
    parts[1] = bad ? NAN : static_cast<float>(ce);
  }
}

void check_params(int64_t rows, int64_t cols, const KDLossParams& p) {
  ISLKD_CHECK(rows >= 0 && cols >= 1, "kd_loss: needs rows >= 0 and at least one class, got ", rows, " x ", cols);
  ISLKD_CHECK(std::isfinite(p.temperature) && p.temperature > 0.0f, "kd_loss: temperature must be > 0, got ",
              p.temperature);
  ISLKD_CHECK(std::isfinite(p.alpha) && p.alpha >= 0.0f && p.alpha <= 1.0f, "kd_loss: alpha must be in [0, 1], got ",
              p.alpha);
  ISLKD_CHECK(rows <= 0x7fffffff, "kd_loss: ", rows, " rows exceed one launch's grid");
}

// The per-row launch, shared by both entry points.
void launch_rows(int64_t rows, int64_t cols, const float* student, const float* teacher, const int32_t* labels,
                 const KDLossParams& p, float* row_kd, float* row_ce, float* row_loss, float* dstudent) {
  const dim3 grid(static_cast<unsigned>(rows)), block(detail::kd_row_threads(cols));
  const float scale = static_cast<float>(1.0 / static_cast<double>(rows));
  if (cols <= kStageMaxCols) {
    const size_t smem = static_cast<size_t>(2 * cols) * sizeof(float);
    ISLKD_LAUNCH((kd_loss_kernel<true>), grid, block, smem, compute_stream(), cols, p.temperature, p.alpha, scale,
                 student, teacher, labels, row_kd, row_ce, row_loss, dstudent);
  } else {
    ISLKD_LAUNCH((kd_loss_kernel<false>), grid, block, 0, compute_stream(), cols, p.temperature, p.alpha, scale,
                 student, teacher, labels, row_kd, row_ce, row_loss, dstudent);
  }
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace

void kd_loss_forward_backward_on_device(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                        const int32_t* labels, const KDLossParams& p, float* row_loss,
                                        float* dstudent, float* loss, float* parts) {
  check_params(rows, cols, p);
  ISLKD_CHECK(rows >= 1, "kd_loss: no rows");
  detail::DeviceTemp<float> tmp(2 * rows);  // row_kd, then row_ce
  detail::DeviceTemp<detail::RowLossSummary> sum(1);
  launch_rows(rows, cols, student, teacher, labels, p, tmp.get(), tmp.get() + rows, row_loss, dstudent);
  detail::summarize_row_losses_on_device(rows, cols, labels, tmp.get(), tmp.get() + rows, sum.get());
  ISLKD_LAUNCH(kd_loss_finish_kernel, dim3(1), dim3(32), 0, compute_stream(), sum.get(), static_cast<double>(rows),
               p.alpha, loss, parts);
  ISLKD_CUDA_CHECK_LAUNCH();
}

float kd_loss_forward_backward(int64_t rows, int64_t cols, const float* student, const float* teacher,
                               const int32_t* labels, const KDLossParams& p, float* row_loss, float* dstudent,
                               float* mean_kd, float* mean_ce) {
  check_params(rows, cols, p);
  if (rows == 0) {
    if (mean_kd) *mean_kd = 0.0f;
    if (mean_ce) *mean_ce = 0.0f;
    return 0.0f;
  }

  detail::DeviceTemp<float> parts(2 * rows);  // row_kd, then row_ce
  float* row_kd = parts.get();
  float* row_ce = parts.get() + rows;
  launch_rows(rows, cols, student, teacher, labels, p, row_kd, row_ce, row_loss, dstudent);

  const detail::RowLossSummary sum = detail::summarize_row_losses(rows, cols, labels, row_kd, row_ce);
  ISLKD_CHECK(sum.bad_row < 0, "kd_loss: label ", sum.bad_label, " of row ", sum.bad_row, " is out of range [0, ",
              cols, ")");
  const double alpha = p.alpha, skd = sum.sum_a / static_cast<double>(rows),
               sce = sum.sum_b / static_cast<double>(rows);
  if (mean_kd) *mean_kd = static_cast<float>(skd);
  if (mean_ce) *mean_ce = static_cast<float>(sce);
  return static_cast<float>(alpha * skd + (1.0 - alpha) * sce);
}

}  // namespace islkd::cuda
