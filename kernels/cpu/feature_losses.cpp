// Feature-distillation losses on the CPU: attention transfer (AT, p = 2) and the mean squared error of FitNet's hint.
// The CUDA twins are in kernels/cuda/feature_losses.cu.
//
// AT, per sample n with student map f (Cs x HW) and teacher map g (Ct x HW):
//   u_k = (1/Cs) sum_c f_ck^2,  a = u / max(||u||, eps)     (eps = 1e-12, F.normalize's)      likewise b from g
//   L = 1/(N HW) sum_{n,k} (a_k - b_k)^2
// Gradient: G_k = dL/da_k = 2 (a_k - b_k) / (N HW); through the normalisation dL/du_j = (G_j - a_j <G, a>) / ||u||
// (or G_j / eps when ||u|| <= eps, where normalize divides by the constant eps); dL/df_ck = dL/du_k * 2 f_ck / Cs.
// Work split: one sample per OpenMP iteration (u, the norms and the gradient of a sample are one pass each over
// its maps; reads 4 bytes per element twice, writes 4). Sums in double; per-sample losses summed serially.
//
// MSE: L = (1/n) sum (a - b)^2, dL/da = 2 (a - b) / n. Chunked partial sums in double, added in chunk order, so
// the value does not depend on the thread count.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {

constexpr double kNormalizeEps = 1e-12;  // F.normalize's default
constexpr int64_t kMseChunk = 1 << 14;

// u = mean over channels of f^2 (HW values), returns ||u||.
double attention_map(int64_t C, int64_t HW, const float* f, double* u) {
  for (int64_t k = 0; k < HW; ++k) u[k] = 0.0;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < HW; ++k) {
      const double v = f[c * HW + k];
      u[k] += v * v;
    }
  double n2 = 0.0;
  for (int64_t k = 0; k < HW; ++k) {
    u[k] /= static_cast<double>(C);
    n2 += u[k] * u[k];
  }
  return std::sqrt(n2);
}

}  // namespace

float at_loss_forward_backward(int64_t N, int64_t Cs, int64_t Ct, int64_t HW, const float* student,
                               const float* teacher, float* dstudent) {
  ISLKD_CHECK(N >= 1 && Cs >= 1 && Ct >= 1 && HW >= 1, "at_loss: empty feature maps (N ", N, ", channels ", Cs, "/",
              Ct, ", HW ", HW, ")");
  std::vector<double> per(static_cast<size_t>(N));
  const double inv_count = 1.0 / static_cast<double>(N * HW);
#pragma omp parallel if (N * (Cs + Ct) * HW > kMseChunk)
  {
    std::vector<double> us(static_cast<size_t>(HW)), ut(static_cast<size_t>(HW)), du(static_cast<size_t>(HW));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const float* f = student + n * Cs * HW;
      const double ns = attention_map(Cs, HW, f, us.data());
      const double nt = attention_map(Ct, HW, teacher + n * Ct * HW, ut.data());
      const double ds = std::max(ns, kNormalizeEps), dt = std::max(nt, kNormalizeEps);
      double loss = 0.0, ga = 0.0;
      for (int64_t k = 0; k < HW; ++k) {
        const double a = us[k] / ds, d = a - ut[k] / dt;
        loss += d * d;
        du[k] = 2.0 * d * inv_count;  // G_k
        ga += du[k] * a;
      }
      per[static_cast<size_t>(n)] = loss;
      if (dstudent) {
        for (int64_t k = 0; k < HW; ++k)
          du[k] = (ns > kNormalizeEps ? du[k] - us[k] / ds * ga : du[k]) / ds * 2.0 / static_cast<double>(Cs);
        float* g = dstudent + n * Cs * HW;
        for (int64_t c = 0; c < Cs; ++c)
          for (int64_t k = 0; k < HW; ++k) g[c * HW + k] = static_cast<float>(du[k] * f[c * HW + k]);
      }
    }
  }
  double total = 0.0;
  for (double v : per) total += v;
  return static_cast<float>(total * inv_count);
}

float mse_loss_forward_backward(int64_t n, const float* a, const float* b, float* da) {
  ISLKD_CHECK(n >= 1, "mse_loss: empty inputs");
  const int64_t chunks = (n + kMseChunk - 1) / kMseChunk;
  std::vector<double> part(static_cast<size_t>(chunks));
  const double k = 2.0 / static_cast<double>(n);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    double s = 0.0;
    const int64_t end = std::min(n, (ch + 1) * kMseChunk);
    for (int64_t i = ch * kMseChunk; i < end; ++i) {
      const double d = static_cast<double>(a[i]) - b[i];
      s += d * d;
      if (da) da[i] = static_cast<float>(k * d);
    }
    part[static_cast<size_t>(ch)] = s;
  }
  double total = 0.0;
  for (double v : part) total += v;
  return static_cast<float>(total / static_cast<double>(n));
}

}  // namespace islkd::cpu
