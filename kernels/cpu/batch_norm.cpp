// CPU batch norm over NCHW (statistics per channel over N*H*W): training forward, eval forward, backward.
//
// Work split: one channel per OpenMP iteration for the statistics passes (a channel's N planes of HW floats are
// reduced by one thread, so results do not depend on the thread count); the eval pass goes over N*C planes.
// Numerics: two passes (mean, then sum of squared deviations), each plane summed in float with an OpenMP simd
// reduction and the plane sums added in double, so a 128x32x32 channel loses no more than a float plane sum.
// Training forward reads x three times and writes y once (12 + 4 bytes per element); backward reads x and dy
// twice and writes dx (20 bytes per element) -- memory-bound.
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {

float plane_sum(const float* p, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}

float plane_sq_dev(const float* p, int64_t n, float mean) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    float d = p[i] - mean;
    s += d * d;
  }
  return s;
}

// Normalises one plane: y = (x - m) * a + b (centering first: no cancellation when |mean| >> std).
void plane_affine(const float* x, float* y, int64_t n, float m, float a, float b) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * a + b;
}

}  // namespace

void batch_norm_forward_train(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                              const float* beta, float* running_mean, float* running_var, float momentum,
                              float eps, float* y, float* save_mean, float* save_invstd) {
  const int64_t count = N * HW;
#pragma omp parallel for schedule(static) if (N * C * HW > (1 << 14))
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < N; ++n) sum += plane_sum(x + (n * C + c) * HW, HW);
    const double mean = sum / static_cast<double>(count);
    double sq = 0.0;
    for (int64_t n = 0; n < N; ++n) sq += plane_sq_dev(x + (n * C + c) * HW, HW, static_cast<float>(mean));
    const double var = sq / static_cast<double>(count);  // biased: what normalisation uses
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    // PyTorch's running_var takes the unbiased estimate; with one value per channel there is none.
    const double unbiased = count > 1 ? sq / static_cast<double>(count - 1) : var;
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    const float a = static_cast<float>(invstd * gamma[c]);
    for (int64_t n = 0; n < N; ++n)
      plane_affine(x + (n * C + c) * HW, y + (n * C + c) * HW, HW, static_cast<float>(mean), a, beta[c]);
  }
}

void batch_norm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, float eps,
                             float* y) {
#pragma omp parallel for schedule(static) if (N * C * HW > (1 << 14))
  for (int64_t p = 0; p < N * C; ++p) {
    const int64_t c = p % C;
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    const float a = static_cast<float>(invstd * gamma[c]);
    plane_affine(x + p * HW, y + p * HW, HW, running_mean[c], a, beta[c]);
  }
}

// dx = gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)),  dgamma = sum(dy * xhat), dbeta = sum(dy).
void batch_norm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx, float* dgamma,
                         float* dbeta) {
  const int64_t count = N * HW;
#pragma omp parallel for schedule(static) if (N * C * HW > (1 << 14))
  for (int64_t c = 0; c < C; ++c) {
    const float mean = save_mean[c], invstd = save_invstd[c];
    double sum_dy = 0.0, sum_dy_xc = 0.0;  // xc = x - mean
    for (int64_t n = 0; n < N; ++n) {
      const float* xp = x + (n * C + c) * HW;
      const float* gp = dy + (n * C + c) * HW;
      float s = 0.0f, sx = 0.0f;
#pragma omp simd reduction(+ : s, sx)
      for (int64_t i = 0; i < HW; ++i) {
        s += gp[i];
        sx += gp[i] * (xp[i] - mean);
      }
      sum_dy += s;
      sum_dy_xc += sx;
    }
    dbeta[c] = static_cast<float>(sum_dy);
    dgamma[c] = static_cast<float>(sum_dy_xc * invstd);
    if (!dx) continue;
    // dx = k * (dy - mean(dy) - xc * invstd^2 * mean(dy * xc)) = k*dy + a*xc + b.
    const double k = static_cast<double>(gamma[c]) * invstd;
    const double mdy = sum_dy / static_cast<double>(count);
    const double proj = sum_dy_xc / static_cast<double>(count) * static_cast<double>(invstd) * invstd;
    const float fk = static_cast<float>(k);
    const float fa = static_cast<float>(-k * proj);
    const float fb = static_cast<float>(-k * mdy);
    for (int64_t n = 0; n < N; ++n) {
      const float* xp = x + (n * C + c) * HW;
      const float* gp = dy + (n * C + c) * HW;
      float* dp = dx + (n * C + c) * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) dp[i] = fk * gp[i] + fa * (xp[i] - mean) + fb;
    }
  }
}

}  // namespace islkd::cpu
