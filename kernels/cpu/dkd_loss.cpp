// Fused decoupled knowledge-distillation loss (DKD, Zhao et al. 2022, mdistiller's dkd_loss) with the CE term on the
// CPU: loss, per-instance loss and dL/dstudent in one kernel. The CUDA twin is kernels/cuda/dkd_loss.cu.
//
// For a row with student logits s, teacher logits t (C classes), label y and temperature T, let P = softmax(s/T),
// Q = softmax(t/T), b = P_y (target mass), o = 1 - b (non-target mass), and qs, qt the distributions over the
// non-target classes alone (qs_j = P_j / o, j != y). Then
//   TCKD_row = T^2 * (Q_y log(Q_y / P_y) + (1 - Q_y) log((1 - Q_y) / o))        binary KL of the target mass
//   NCKD_row = T^2 * KL(qt || qs)                                                 KL among the non-target classes
//   CE_row   = -log softmax(s)_y
//   L_row    = ce_weight * CE_row + alpha * TCKD_row + beta * NCKD_row,   L = (1/N) sum_rows L_row
// mdistiller excludes the target from NCKD by subtracting 1000 from its logit before the softmaxes; its weight there
// is exp(-1000/T - ...) = 0 in float, so excluding it exactly is the same loss. The DKD warm-up factor
// min(epoch / warmup, 1) multiplies alpha and beta (the caller folds it in).
// Gradient w.r.t. s_j (a = s/T; d log b / da_j = [j==y] - P_j, d log o / da_j = qs_j [j!=y] - P_j, P_j = o qs_j):
//   d TCKD / ds_j = T * (o - Qo) * qs_j   (j != y),     T * (Qo - o)   (j == y),        Qo = 1 - Q_y
//   d NCKD / ds_j = T * (qs_j - qt_j)     (j != y),     0              (j == y)
//   d CE / ds_j   = softmax(s)_j - [j==y]
// The teacher is a constant.
//
// Numerics: the non-target statistics use the non-target maxima (every exponent <= 0) and the target enters through
// log-sum-exp, so log o stays accurate when the target dominates (o = 1 - b would cancel) and logits of any
// magnitude stay finite; sums in double, as kd_loss.cpp. One class (no non-target class): TCKD = NCKD = CE = 0.
// Work split: one row per OpenMP iteration; means summed serially afterwards (independent of the thread count).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {

constexpr int64_t kParallelMinLogits = 1 << 14;

struct DKDRow {
  double tckd = 0.0, nckd = 0.0, ce = 0.0;
};

// log(1 + exp(x)) without overflow, accurate for both signs.
double softplus(double x) { return x > 0.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// log(exp(x) + exp(y)) without overflow.
double log_add_exp(double x, double y) {
  const double m = std::max(x, y);
  return m + std::log(std::exp(x - m) + std::exp(y - m));
}

DKDRow dkd_row(int64_t C, const float* s, const float* t, int32_t y, double T, double alpha, double beta,
               double ce_weight, float* grad, double scale, double* scratch) {
  DKDRow r;
  if (C == 1) {
    if (grad) grad[0] = 0.0f;
    return r;
  }
  // Non-target maxima.
  double ms = -INFINITY, mt = -INFINITY;
  for (int64_t j = 0; j < C; ++j) {
    if (j == y) continue;
    ms = std::max(ms, static_cast<double>(s[j]));
    mt = std::max(mt, static_cast<double>(t[j]));
  }
  // Non-target partition functions of s/T, s and t/T, and the qt-weighted log-ratio sum for NCKD.
  const double invT = 1.0 / T;
  double zsT = 0.0, zs = 0.0, ztT = 0.0, w = 0.0;
  double* esT = scratch;
  double* es = scratch ? scratch + C : nullptr;
  double* etT = scratch ? scratch + 2 * C : nullptr;
  for (int64_t j = 0; j < C; ++j) {
    if (j == y) continue;
    const double c = static_cast<double>(s[j]) - ms, a = c * invT, b = (static_cast<double>(t[j]) - mt) * invT;
    const double ea = std::exp(a), ec = std::exp(c), eb = std::exp(b);
    zsT += ea;
    zs += ec;
    ztT += eb;
    w += eb * (b - a);
    if (scratch) {
      esT[j] = ea;
      es[j] = ec;
      etT[j] = eb;
    }
  }
  const double lzsT = std::log(zsT), lztT = std::log(ztT), lzs = std::log(zs);
  // Target vs the rest, in log space relative to the non-target maxima.
  // x = log(target / non-target mass): log o = -softplus(x), log b = x - softplus(x) (as the CUDA twin does).
  const double xs = (static_cast<double>(s[y]) - ms) * invT - lzsT, xt = (static_cast<double>(t[y]) - mt) * invT - lztT;
  const double spS = softplus(xs), spT = softplus(xt);
  const double lbs = xs - spS, los = -spS, lbt = xt - spT, lot = -spT;
  const double bt = std::exp(lbt), ot = std::exp(lot);
  r.tckd = T * T * ((bt > 0.0 ? bt * (lbt - lbs) : 0.0) + (ot > 0.0 ? ot * (lot - los) : 0.0));
  r.nckd = T * T * (w / ztT - lztT + lzsT);
  const double d1 = static_cast<double>(s[y]) - ms, L1 = log_add_exp(lzs, d1);
  r.ce = L1 - d1;

  if (grad) {
    const double o = std::exp(los), izsT = 1.0 / zsT, iztT = 1.0 / ztT, eL1 = std::exp(-L1);
    const double kt = alpha * T * (o - ot), kn = beta * T;
    for (int64_t j = 0; j < C; ++j) {
      double g;
      if (j == y) {
        g = ce_weight * (std::exp(d1 - L1) - 1.0) + alpha * T * (ot - o);
      } else {
        const double qs = esT[j] * izsT, qt = etT[j] * iztT;
        g = ce_weight * es[j] * eL1 + kt * qs + kn * (qs - qt);
      }
      grad[j] = static_cast<float>(scale * g);
    }
  }
  return r;
}

}  // namespace

float dkd_loss_forward_backward(int64_t rows, int64_t cols, const float* student, const float* teacher,
                                const int32_t* labels, float temperature, float alpha, float beta, float ce_weight,
                                float* row_loss, float* dstudent, float* parts) {
  ISLKD_CHECK(rows >= 0 && cols >= 1, "dkd_loss: needs rows >= 0 and at least one class, got ", rows, " x ", cols);
  ISLKD_CHECK(std::isfinite(temperature) && temperature > 0.0f, "dkd_loss: temperature must be > 0, got ",
              temperature);
  ISLKD_CHECK(std::isfinite(alpha) && std::isfinite(beta) && std::isfinite(ce_weight),
              "dkd_loss: alpha, beta and ce_weight must be finite, got ", alpha, ", ", beta, ", ", ce_weight);
  for (int64_t r = 0; r < rows; ++r)
    ISLKD_CHECK(labels[r] >= 0 && labels[r] < cols, "dkd_loss: label ", labels[r], " of row ", r,
                " is out of range [0, ", cols, ")");
  if (parts) parts[0] = parts[1] = parts[2] = 0.0f;
  if (rows == 0) return 0.0f;

  const double scale = 1.0 / static_cast<double>(rows);
  std::vector<DKDRow> res(static_cast<size_t>(rows));
#pragma omp parallel if (rows * cols > kParallelMinLogits)
  {
    std::vector<double> scratch(dstudent ? static_cast<size_t>(3 * cols) : 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const DKDRow d = dkd_row(cols, student + r * cols, teacher + r * cols, labels[r], temperature, alpha, beta,
                               ce_weight, dstudent ? dstudent + r * cols : nullptr, scale,
                               dstudent ? scratch.data() : nullptr);
      res[static_cast<size_t>(r)] = d;
      if (row_loss) row_loss[r] = static_cast<float>(ce_weight * d.ce + alpha * d.tckd + beta * d.nckd);
    }
  }
  double st = 0.0, sn = 0.0, sc = 0.0;
  for (const DKDRow& d : res) {
    st += d.tckd;
    sn += d.nckd;
    sc += d.ce;
  }
  st *= scale;
  sn *= scale;
  sc *= scale;
  if (parts) {
    parts[0] = static_cast<float>(st);
    parts[1] = static_cast<float>(sn);
    parts[2] = static_cast<float>(sc);
  }
  return static_cast<float>(static_cast<double>(ce_weight) * sc + static_cast<double>(alpha) * st +
                            static_cast<double>(beta) * sn);
}

}  // namespace islkd::cpu
