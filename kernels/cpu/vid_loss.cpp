// VID's Gaussian negative log-likelihood on the CPU (Ahn et al. 2019; RepDistiller distiller_zoo/VID.py VIDLoss):
// the teacher's feature t modelled as N(mu, v_c) with mu the regressor's output and a learned per-channel variance
// v_c = softplus(log_scale_c) + eps:  L = mean over N*C*HW of 0.5 ((mu - t)^2 / v_c + log v_c).
// dL/dmu = (mu - t) / (v_c count); dL/dlog_scale_c = sigmoid(log_scale_c) * sum 0.5 (1 / v_c - (mu - t)^2 / v_c^2)
// / count. Channel sums run in double.
#include <cmath>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

float vid_loss_forward_backward(int64_t N, int64_t C, int64_t HW, const float* pred, const float* target,
                                const float* log_scale, float eps, float* dpred, float* dlog_scale) {
  ISLKD_CHECK(N >= 1 && C >= 1 && HW >= 1, "vid_loss: empty features (N ", N, ", C ", C, ", HW ", HW, ")");
  const double inv = 1.0 / static_cast<double>(N * C * HW);
  double loss = 0;
  for (int64_t c = 0; c < C; ++c) {
    const double ls = log_scale[c];
    // softplus without overflow for large log_scale
    const double v = (ls > 20.0 ? ls : std::log1p(std::exp(ls))) + eps, logv = std::log(v);
    double sq = 0;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t off = (n * C + c) * HW;
      for (int64_t k = 0; k < HW; ++k) {
        const double d = static_cast<double>(pred[off + k]) - target[off + k];
        sq += d * d;
        if (dpred) dpred[off + k] = static_cast<float>(d / v * inv);
      }
    }
    const double m = static_cast<double>(N * HW);
    loss += 0.5 * (sq / v + m * logv);
    if (dlog_scale) {
      const double sig = 1.0 / (1.0 + std::exp(-ls));
      dlog_scale[c] = static_cast<float>(sig * 0.5 * (m / v - sq / (v * v)) * inv);
    }
  }
  return static_cast<float>(loss * inv);
}

}  // namespace islkd::cpu
