// Fused decoupled knowledge-distillation loss (DKD, mdistiller's dkd_loss) with the CE term on CUDA: loss,
// per-instance loss and dL/dstudent in one launch (plus the one-block summaries for the means). Same semantics and
// derivation as kernels/cpu/dkd_loss.cpp:
//   L_row = ce_weight * CE_row + alpha * TCKD_row + beta * NCKD_row,   L = mean over rows
//   dL/ds_j = (ce_weight (p_j - [j==y]) + alpha T (o - Qo) qs_j + beta T (qs_j - qt_j)) / N         (j != y)
//   dL/ds_y = (ce_weight (p_y - 1) + alpha T (Qo - o)) / N
// with o, Qo the student's and teacher's non-target mass at temperature T and qs, qt their distributions over the
// non-target classes.
//
// Work split: one block per row, 32..256 threads (kd_row_threads), as kd_loss.cu. The row statistics are kd_loss's
// (kd_row.cuh, one online sweep) taken over the non-target classes only (the label's element is skipped): the
// non-target maxima and partition functions of s/T, s and t/T and the qt-weighted log-ratio sum that gives
// KL(qt || qs). The target's logits then enter through log-sum-exp, so the target and non-target masses come out
// in log space (no 1 - b cancellation). Every thread derives the block-uniform scalars itself; the gradient sweep
// revisits the elements it read, staged in shared memory for C <= 4096 (2 * 4 * C bytes), so each logit is read
// from memory once.
// Napkin math (C <= 4096): 8 bytes read per logit pair, 4 bytes of gradient written, 6 exp per logit; memory-bound
// for C >= ~100 like kd_loss.
// Means: per-row TCKD, NCKD and CE go to a temporary; two summarize_row_losses launches add them in double with a
// fixed tree (deterministic) and find a bad label, which makes the device loss NaN (nothing is thrown: no host wait).
#include <algorithm>
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

__device__ __forceinline__ float log_add_exp(float x, float y) {
  const float m = fmaxf(x, y);
  return m + logf(expf(x - m) + expf(y - m));
}

// log(1 + exp(x)) without overflow, accurate for both signs.
__device__ __forceinline__ float softplus(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

template <bool kStaged>
__global__ void dkd_loss_kernel(int64_t cols, float T, float alpha, float beta, float ce_weight, float scale,
                                const float* __restrict__ student, const float* __restrict__ teacher,
                                const int32_t* __restrict__ labels, float* __restrict__ row_tckd,
                                float* __restrict__ row_nckd, float* __restrict__ row_ce,
                                float* __restrict__ row_loss, float* __restrict__ dstudent) {
  __shared__ float scratch[32];
  ISLKD_DYNAMIC_SHARED(float, stage);
  const int64_t r = blockIdx.x;
  const float* s = student + r * cols;
  const float* t = teacher + r * cols;
  const int32_t y = labels[r];
  const bool valid = y >= 0 && y < cols;
  const bool decoupled = valid && cols > 1;  // one class: nothing to decouple, every term is 0
  const float invT = 1.0f / T;
  float* stage_s = kStaged ? stage : nullptr;
  float* stage_t = kStaged ? stage + cols : nullptr;
  const detail::KDRowStats st =
      detail::kd_row_stats<true>(cols, s, t, invT, stage_s, stage_t, scratch, valid ? y : -1);

  float tckd = 0.0f, nckd = 0.0f, ce = 0.0f, o = 0.0f, ot = 0.0f, d1 = 0.0f, L1 = 0.0f;
  if (decoupled) {
    const float lzsT = logf(st.zsT), lztT = logf(st.ztT), lzs = logf(st.zs);
    // x = log(target / non-target mass); log o = -softplus(x), log b = x - softplus(x): no 1 - b cancellation
    // and no difference of the two log-partitions, which float would lose for a small target mass.
    const float xs = (s[y] - st.ms) * invT - lzsT, xt = (t[y] - st.mt) * invT - lztT;
    const float spS = softplus(xs), spT = softplus(xt);
    const float lbs = xs - spS, los = -spS, lbt = xt - spT, lot = -spT;
    const float bt = expf(lbt);
    ot = expf(lot);
    o = expf(los);
    tckd = T * T * ((bt > 0.0f ? bt * (lbt - lbs) : 0.0f) + (ot > 0.0f ? ot * (lot - los) : 0.0f));
    nckd = T * T * (st.w / st.ztT - lztT + lzsT);
    d1 = s[y] - st.ms;
    L1 = log_add_exp(lzs, d1);
    ce = L1 - d1;
  }
  if (!valid) tckd = nckd = ce = NAN;
  if (threadIdx.x == 0) {
    row_tckd[r] = tckd;
    row_nckd[r] = nckd;
    row_ce[r] = ce;
    if (row_loss) row_loss[r] = ce_weight * ce + alpha * tckd + beta * nckd;
  }
  if (dstudent) {
    float* g = dstudent + r * cols;
    const float izsT = 1.0f / st.zsT, iztT = 1.0f / st.ztT;
    const float kt = alpha * T * (o - ot), kn = beta * T;
    // Same elements as the statistics sweep, same thread: the staged values need no barrier.
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      float v;
      if (!decoupled) {
        v = valid ? 0.0f : NAN;
      } else if (c == y) {
        v = ce_weight * (expf(d1 - L1) - 1.0f) + alpha * T * (ot - o);
      } else {
        const float sv = kStaged ? stage_s[c] : s[c];
        const float tv = kStaged ? stage_t[c] : t[c];
        const float qs = expf((sv - st.ms) * invT) * izsT, qt = expf((tv - st.mt) * invT) * iztT;
        v = ce_weight * expf(sv - st.ms - L1) + kt * qs + kn * (qs - qt);
      }
      g[c] = scale * v;
    }
  }
}

// The means from the two device summaries (TCKD + NCKD, CE); NaN when a label is out of range.
__global__ void dkd_loss_finish_kernel(const detail::RowLossSummary* __restrict__ kd,
                                       const detail::RowLossSummary* __restrict__ ce, double rows, float alpha,
                                       float beta, float ce_weight, float* __restrict__ loss,
                                       float* __restrict__ parts) {
  if (threadIdx.x != 0) return;
  const double tckd = kd->sum_a / rows, nckd = kd->sum_b / rows, mce = ce->sum_a / rows;
  const bool bad = kd->bad_row >= 0;
  loss[0] = bad ? NAN
                : static_cast<float>(static_cast<double>(ce_weight) * mce + static_cast<double>(alpha) * tckd +
                                     static_cast<double>(beta) * nckd);
  if (parts) {
    parts[0] = bad ? NAN : static_cast<float>(tckd);
    parts[1] = bad ? NAN : static_cast<float>(nckd);
    parts[2] = bad ? NAN : static_cast<float>(mce);
  }
}

void check_params(int64_t rows, int64_t cols, float T, float alpha, float beta, float ce_weight) {
  ISLKD_CHECK(rows >= 0 && cols >= 1, "dkd_loss: needs rows >= 0 and at least one class, got ", rows, " x ", cols);
  ISLKD_CHECK(std::isfinite(T) && T > 0.0f, "dkd_loss: temperature must be > 0, got ", T);
  ISLKD_CHECK(std::isfinite(alpha) && std::isfinite(beta) && std::isfinite(ce_weight),
              "dkd_loss: alpha, beta and ce_weight must be finite, got ", alpha, ", ", beta, ", ", ce_weight);
  ISLKD_CHECK(rows <= 0x7fffffff, "dkd_loss: ", rows, " rows exceed one launch's grid");
}

}  // namespace

void dkd_loss_forward_backward_on_device(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                         const int32_t* labels, float temperature, float alpha, float beta,
                                         float ce_weight, float* row_loss, float* dstudent, float* loss,
                                         float* parts) {
  check_params(rows, cols, temperature, alpha, beta, ce_weight);
  ISLKD_CHECK(rows >= 1, "dkd_loss: no rows");
  detail::DeviceTemp<float> tmp(3 * rows);  // row TCKD, NCKD, CE
  detail::DeviceTemp<detail::RowLossSummary> sum(2);
  const dim3 grid(static_cast<unsigned>(rows)), block(detail::kd_row_threads(cols));
  const float scale = static_cast<float>(1.0 / static_cast<double>(rows));
  float* row_tckd = tmp.get();
  float* row_nckd = tmp.get() + rows;
  float* row_ce = tmp.get() + 2 * rows;
  if (cols <= kStageMaxCols) {
    const size_t smem = static_cast<size_t>(2 * cols) * sizeof(float);
    ISLKD_LAUNCH((dkd_loss_kernel<true>), grid, block, smem, compute_stream(), cols, temperature, alpha, beta,
                 ce_weight, scale, student, teacher, labels, row_tckd, row_nckd, row_ce, row_loss, dstudent);
  } else {
    ISLKD_LAUNCH((dkd_loss_kernel<false>), grid, block, 0, compute_stream(), cols, temperature, alpha, beta,
                 ce_weight, scale, student, teacher, labels, row_tckd, row_nckd, row_ce, row_loss, dstudent);
  }
  ISLKD_CUDA_CHECK_LAUNCH();
  detail::summarize_row_losses_on_device(rows, cols, labels, row_tckd, row_nckd, sum.get());
  detail::summarize_row_losses_on_device(rows, cols, labels, row_ce, nullptr, sum.get() + 1);
  ISLKD_LAUNCH(dkd_loss_finish_kernel, dim3(1), dim3(32), 0, compute_stream(), sum.get(), sum.get() + 1,
               static_cast<double>(rows), alpha, beta, ce_weight, loss, parts);
  ISLKD_CUDA_CHECK_LAUNCH();
}

float dkd_loss_forward_backward(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                const int32_t* labels, float temperature, float alpha, float beta, float ce_weight,
                                float* row_loss, float* dstudent, float* parts) {
  check_params(rows, cols, temperature, alpha, beta, ce_weight);
  if (parts) parts[0] = parts[1] = parts[2] = 0.0f;
  if (rows == 0) return 0.0f;
  detail::DeviceTemp<float> dev(4);  // loss, parts
  dkd_loss_forward_backward_on_device(rows, cols, student, teacher, labels, temperature, alpha, beta, ce_weight,
                                      row_loss, dstudent, dev.get(), dev.get() + 1);
  float host[4];
  memcpy_d2h(host, dev.get(), sizeof host);
  // The host entry point checks the labels like the CPU (the device one only makes the loss NaN).
  const detail::RowLossSummary labels_ok = detail::summarize_row_losses(rows, cols, labels, nullptr, nullptr);
  ISLKD_CHECK(labels_ok.bad_row < 0, "dkd_loss: label ", labels_ok.bad_label, " of row ", labels_ok.bad_row,
              " is out of range [0, ", cols, ")");
  if (parts) std::copy(host + 1, host + 4, parts);
  return host[0];
}

}  // namespace islkd::cuda
