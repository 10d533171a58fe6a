// Fused Hinton knowledge-distillation loss on the CPU: loss, per-instance loss and dL/dstudent in one kernel.
//
// What it computes, for a row with student logits s, teacher logits t (C classes), label y, temperature T, weight a:
//   p^T = softmax(x / T),  p = softmax(s)
//   KD_row = T^2 * KL(p_t^T || p_s^T) = T^2 * sum_j p_t^T_j (log p_t^T_j - log p_s^T_j)
//   CE_row = -log p_y
//   L_row  = a * KD_row + (1 - a) * CE_row,      L = (1/N) * sum_rows L_row   (N = rows)
// Gradient. With log p_s^T_j = s_j/T - lse(s/T):  d(log p_s^T_i)/ds_j = ([i==j] - p_s^T_j) / T, so
//   d KL / ds_j = -sum_i p_t^T_i ([i==j] - p_s^T_j) / T = (p_s^T_j - p_t^T_j) / T      (sum_i p_t^T_i = 1)
//   d KD_row / ds_j = T^2 * (p_s^T_j - p_t^T_j) / T = T * (p_s^T_j - p_t^T_j)
//   d CE_row / ds_j = p_j - [j==y]
//   dL / ds_j = (a * T * (p_s^T_j - p_t^T_j) + (1 - a) * (p_j - [j==y])) / N
// The teacher is a constant (no gradient), as in Hinton et al. and every KD codebase.
//
// Numerics: every exponential is of a max-shifted value (<= 0), and every log-probability is formed in log space
// (x_j - max - log sum exp), never as log(exp(..)), so logits of any magnitude (1e4, -1e4, mixed) give finite,
// accurate results; a probability that underflows to 0 contributes 0 * finite = 0 to the KL. The row statistics
// are accumulated in double: KL is a p_t-weighted mean of log-ratios minus a difference of log-partitions, and
// double keeps that cancellation harmless. The cost is irrelevant next to the network that produced the logits.
//
// Work split: one row per OpenMP iteration (rows are independent; static schedule). Per row: sweep 1 reads s and t
// from memory for the two maxima, sweep 2 re-reads them from L1/L2 (a row of C <= 4096 floats is 16 KiB each) to
// form the partition functions and the KL sum while keeping the exponentials in a per-thread scratch, sweep 3
// writes the gradient from that scratch. Memory traffic: 8 bytes read + 4 written per logit, 3 exp per logit.
// Means are summed serially over per-row values afterwards, so the result does not depend on the thread count.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/kd_row.h"

namespace islkd::cpu {

namespace {
// Below this many logits the fork/join costs more than the rows.
constexpr int64_t kParallelMinLogits = 1 << 14;
}  // namespace

float kd_loss_forward_backward(int64_t rows, int64_t cols, const float* student, const float* teacher,
                               const int32_t* labels, const KDLossParams& p, float* row_loss, float* dstudent,
                               float* mean_kd, float* mean_ce) {
  ISLKD_CHECK(rows >= 0 && cols >= 1, "kd_loss: needs rows >= 0 and at least one class, got ", rows, " x ", cols);
  ISLKD_CHECK(std::isfinite(p.temperature) && p.temperature > 0.0f, "kd_loss: temperature must be > 0, got ",
              p.temperature);
  ISLKD_CHECK(std::isfinite(p.alpha) && p.alpha >= 0.0f && p.alpha <= 1.0f, "kd_loss: alpha must be in [0, 1], got ",
              p.alpha);
  for (int64_t r = 0; r < rows; ++r)
    ISLKD_CHECK(labels[r] >= 0 && labels[r] < cols, "kd_loss: label ", labels[r], " of row ", r,
                " is out of range [0, ", cols, ")");
  if (rows == 0) {
    if (mean_kd) *mean_kd = 0.0f;
    if (mean_ce) *mean_ce = 0.0f;
    return 0.0f;
  }

  const double T = p.temperature, alpha = p.alpha, scale = 1.0 / static_cast<double>(rows);
  std::vector<double> kd(static_cast<size_t>(rows)), ce(static_cast<size_t>(rows));
#pragma omp parallel if (rows * cols > kParallelMinLogits)
  {
    std::vector<double> scratch(dstudent ? static_cast<size_t>(3 * cols) : 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      detail::KDRowResult res = detail::kd_row(cols, student + r * cols, teacher + r * cols, labels[r], T, alpha,
                                               dstudent ? dstudent + r * cols : nullptr, scale,
                                               dstudent ? scratch.data() : nullptr);
      kd[static_cast<size_t>(r)] = res.kd;
      ce[static_cast<size_t>(r)] = res.ce;
      if (row_loss) row_loss[r] = static_cast<float>(alpha * res.kd + (1.0 - alpha) * res.ce);
    }
  }

  double skd = 0.0, sce = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    skd += kd[static_cast<size_t>(r)];
    sce += ce[static_cast<size_t>(r)];
  }
  skd *= scale;
  sce *= scale;
  if (mean_kd) *mean_kd = static_cast<float>(skd);
  if (mean_ce) *mean_ce = static_cast<float>(sce);
  return static_cast<float>(alpha * skd + (1.0 - alpha) * sce);
}

}  // namespace islkd::cpu
