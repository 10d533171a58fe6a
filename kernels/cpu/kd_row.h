// The per-row arithmetic shared by the fused KD loss (kd_loss.cpp) and the difficulty scores
// (difficulty_scores.cpp), so that the `loss` score of an instance is bit-identical to its training loss.
// Private to kernels/cpu; see kd_loss.cpp for the derivation and the numerics.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace islkd::cpu::detail {

// What one row produced. Log-partition functions are of the max-shifted logits (log sum exp(x - max)).
struct KDRowResult {
  double kd = 0.0;       // T^2 * KL(p_t^T || p_s^T)   (0 when the teacher was not read)
  double ce = 0.0;       // -log softmax(s)[y]
  double log_p_y = 0.0;  // log softmax(s)[y] (for the confidence score)
};

// One row of C logits. `teacher` may be null (then kd = 0 and the teacher is never read).
// When `grad` is non-null, writes grad[j] = scale * (alpha*T*(p_s^T_j - p_t^T_j) + (1-alpha)*(p_s_j - [j==y]))
// using `scratch` (3*C doubles) to keep the exponentials of the statistics sweep for the gradient sweep.
inline KDRowResult kd_row(int64_t C, const float* s, const float* t, int32_t y, double T, double alpha, float* grad,
                          double scale, double* scratch) {
  // Sweep 1: row maxima (the only pass whose reads come from memory; the row then sits in L1/L2).
  double ms = s[0], mt = t ? t[0] : 0.0;
  for (int64_t j = 1; j < C; ++j) ms = std::max(ms, static_cast<double>(s[j]));
  if (t)
    for (int64_t j = 1; j < C; ++j) mt = std::max(mt, static_cast<double>(t[j]));

  // Sweep 2: partition functions of s/T, t/T and s, and the p_t-weighted log-ratio sum. Every exponent is <= 0.
  const double invT = 1.0 / T;
  double zsT = 0.0, ztT = 0.0, zs = 0.0, w = 0.0;
  double* esT = scratch;
  double* etT = scratch ? scratch + C : nullptr;
  double* es = scratch ? scratch + 2 * C : nullptr;
  for (int64_t j = 0; j < C; ++j) {
    const double c = static_cast<double>(s[j]) - ms;  // exact: a float difference fits a double
    const double a = c * invT;
    const double ea = std::exp(a), ec = std::exp(c);
    zsT += ea;
    zs += ec;
    if (t) {
      const double b = (static_cast<double>(t[j]) - mt) * invT;
      const double eb = std::exp(b);
      ztT += eb;
      w += eb * (b - a);
      if (scratch) etT[j] = eb;
    }
    if (scratch) {
      esT[j] = ea;
      es[j] = ec;
    }
  }

  KDRowResult r;
  const double lzs = std::log(zs);
  r.log_p_y = (static_cast<double>(s[y]) - ms) - lzs;
  r.ce = -r.log_p_y;
  if (t) {
    // KL = sum_j p_t_j (log p_t_j - log p_s_j) with log p_t_j = b_j - log ztT, log p_s_j = a_j - log zsT.
    const double kl = w / ztT - std::log(ztT) + std::log(zsT);
    r.kd = T * T * kl;
  }

  if (grad) {
    const double ka = alpha * T, kc = 1.0 - alpha;
    const double izsT = 1.0 / zsT, iztT = t ? 1.0 / ztT : 0.0, izs = 1.0 / zs;
    for (int64_t j = 0; j < C; ++j) {
      const double pt = t ? etT[j] * iztT : 0.0;
      const double g = ka * (esT[j] * izsT - pt) + kc * (es[j] * izs - (j == y ? 1.0 : 0.0));
      grad[j] = static_cast<float>(scale * g);
    }
  }
  return r;
}

}  // namespace islkd::cpu::detail
