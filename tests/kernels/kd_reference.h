// Plain double-precision reference of the KD loss pieces (an unfused composition: softmax, log, KL, CE), shared by
// kd_loss_test.cpp and difficulty_scores_test.cpp. Deliberately written the textbook way, not like the kernel.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace islkd::test {

// log softmax(x / T) of one row, stable (max-shifted) in double.
inline std::vector<double> ref_log_softmax(const float* x, int64_t C, double T) {
  std::vector<double> z(static_cast<size_t>(C));
  double m = -INFINITY;
  for (int64_t j = 0; j < C; ++j) m = std::max(m, static_cast<double>(x[j]) / T);
  double sum = 0.0;
  for (int64_t j = 0; j < C; ++j) sum += std::exp(static_cast<double>(x[j]) / T - m);
  for (int64_t j = 0; j < C; ++j) z[static_cast<size_t>(j)] = static_cast<double>(x[j]) / T - m - std::log(sum);
  return z;
}

inline std::vector<double> ref_softmax(const float* x, int64_t C, double T) {
  std::vector<double> p = ref_log_softmax(x, C, T);
  for (double& v : p) v = std::exp(v);
  return p;
}

struct RefKD {
  std::vector<double> kd, ce, loss;  // per row: T^2 KL, CE, alpha*kd + (1-alpha)*ce
  std::vector<double> grad;          // dL/ds of the mean loss, rows x C
  double mean_kd = 0, mean_ce = 0, mean_loss = 0;
};

inline RefKD ref_kd(int64_t rows, int64_t C, const std::vector<float>& s, const std::vector<float>& t,
                    const std::vector<int32_t>& y, double T, double alpha) {
  RefKD r;
  r.grad.resize(static_cast<size_t>(rows * C));
  for (int64_t i = 0; i < rows; ++i) {
    const float* si = s.data() + i * C;
    const float* ti = t.data() + i * C;
    std::vector<double> lps_T = ref_log_softmax(si, C, T), lpt_T = ref_log_softmax(ti, C, T);
    std::vector<double> lps = ref_log_softmax(si, C, 1.0);
    double kl = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      double pt = std::exp(lpt_T[static_cast<size_t>(j)]);
      if (pt > 0) kl += pt * (lpt_T[static_cast<size_t>(j)] - lps_T[static_cast<size_t>(j)]);
    }
    double kd = T * T * kl, ce = -lps[static_cast<size_t>(y[static_cast<size_t>(i)])];
    r.kd.push_back(kd);
    r.ce.push_back(ce);
    r.loss.push_back(alpha * kd + (1 - alpha) * ce);
    for (int64_t j = 0; j < C; ++j) {
      double ps_T = std::exp(lps_T[static_cast<size_t>(j)]), pt_T = std::exp(lpt_T[static_cast<size_t>(j)]);
      double ps = std::exp(lps[static_cast<size_t>(j)]);
      double onehot = j == y[static_cast<size_t>(i)] ? 1.0 : 0.0;
      r.grad[static_cast<size_t>(i * C + j)] =
          (alpha * T * (ps_T - pt_T) + (1 - alpha) * (ps - onehot)) / static_cast<double>(rows);
    }
    r.mean_kd += kd / static_cast<double>(rows);
    r.mean_ce += ce / static_cast<double>(rows);
    r.mean_loss += (alpha * kd + (1 - alpha) * ce) / static_cast<double>(rows);
  }
  return r;
}

inline std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace islkd::test
