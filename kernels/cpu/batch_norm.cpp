// CPU batch norm over NCHW (statistics per channel over N*H*W): training forward, eval forward, backward.
//
// Work split: one channel per OpenMP iteration for the statistics passes (a channel's N planes of HW floats are
// reduced by one thread, so results do not depend on the thread count); the eval pass goes over N*C planes.
// Numerics: two passes (mean, then sum of squared deviations), each plane summed in float with an OpenMP simd
// reduction and the plane sums added in double, so a 128x32x32 channel loses no more than a float plane sum.
// Training forward reads x three times and writes y once (12 + 4 bytes per element); backward reads x and dy
// twice and writes dx (20 bytes per element) -- memory-bound.
// Synchronised (--sync-bn; kernels/common/batch_norm_sync.h): the training kernels hand their per-channel count/mean/M2
// (forward) and sum dy / sum dy*xc (backward) to the BatchNormSync between the reduction and the elementwise pass; the
// plain layout then runs its per-channel loop in two parts (same arithmetic: with one replica, the same bits).
#include <cmath>
#include <vector>

#include "kernels/common/batch_norm_sync.h"
#include "kernels/common/error.h"
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

// ---- synchronised (--sync-bn), plain NCHW ----
// The arithmetic of the two kernels above, split at the reduction so the replicas' values can be combined
// (kernels/common/batch_norm_sync.h): with one replica, the same bits.
namespace {

void bn_train_plain_synced(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                           float* running_mean, float* running_var, float momentum, float eps, float* y,
                           float* save_mean, float* save_invstd, BatchNormSync& sync) {
  const int64_t count = N * HW;
  const bool par = N * C * HW > (1 << 14);
  std::vector<double> mean(static_cast<size_t>(C)), m2(static_cast<size_t>(C));
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < N; ++n) sum += plane_sum(x + (n * C + c) * HW, HW);
    mean[c] = sum / static_cast<double>(count);
    double sq = 0.0;
    for (int64_t n = 0; n < N; ++n) sq += plane_sq_dev(x + (n * C + c) * HW, HW, static_cast<float>(mean[c]));
    m2[c] = sq;
  }
  double n_all = static_cast<double>(count);
  sync_moments(sync, C, n_all, mean.data(), m2.data());
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < C; ++c) {
    const double var = m2[c] / n_all;
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    save_mean[c] = static_cast<float>(mean[c]);
    save_invstd[c] = static_cast<float>(invstd);
    const double unbiased = n_all > 1.0 ? m2[c] / (n_all - 1.0) : var;
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
    running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    const float a = static_cast<float>(invstd * gamma[c]);
    for (int64_t n = 0; n < N; ++n)
      plane_affine(x + (n * C + c) * HW, y + (n * C + c) * HW, HW, static_cast<float>(mean[c]), a, beta[c]);
  }
}

void bn_backward_plain_synced(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                              const float* save_mean, const float* save_invstd, float* dx, float* dgamma,
                              float* dbeta, BatchNormSync& sync) {
  const bool par = N * C * HW > (1 << 14);
  // [sum dy (C), sum dy * xc (C), count]: this replica's, then every replica's.
  std::vector<double> sums(static_cast<size_t>(2 * C + 1));
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < C; ++c) {
    const float mean = save_mean[c];
    double sum_dy = 0.0, sum_dy_xc = 0.0;
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
    // The parameters' gradients are this replica's (the gradient all-reduce averages them like any other).
    dbeta[c] = static_cast<float>(sum_dy);
    dgamma[c] = static_cast<float>(sum_dy_xc * save_invstd[c]);
    sums[c] = sum_dy, sums[C + c] = sum_dy_xc;
  }
  sums[2 * C] = static_cast<double>(N * HW);
  sync_sums(sync, 2 * C + 1, sums.data());
  if (!dx) return;
  const double count = sums[2 * C];
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < C; ++c) {
    const float mean = save_mean[c], invstd = save_invstd[c];
    const double k = static_cast<double>(gamma[c]) * invstd;
    const double mdy = sums[c] / count;
    const double proj = sums[C + c] / count * static_cast<double>(invstd) * invstd;
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

}  // namespace

// ---- channel-blocked layout [N][C/B][HW][B] ----
// The same arithmetic per channel as above, with the B channels of a block handled side by side: each plane of a
// block is HW*B contiguous floats, the lane j of an element is channel cb*B + j, so the inner loop over j is one
// vector of B floats. Lane sums run in float per plane and are added in double, as in the plain kernels.
namespace {

// Work split: the statistics passes run over the N * C/B planes of HW*B floats in parallel, each writing its B lane
// sums (in float) to its own slot; the lane sums are then added per channel in double, n = 0..N-1 in order, so the
// result does not depend on the thread count, and a layer whose C/B is smaller than the thread count (16 channels
// in nChw16c: one block) still uses every thread.
template <int B>
void reduce_planes(int64_t N, int64_t CB, const std::vector<float>& part, double* out /* C */) {
  for (int64_t cb = 0; cb < CB; ++cb)
    for (int j = 0; j < B; ++j) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; ++n) acc += part[static_cast<size_t>((n * CB + cb) * B + j)];
      out[cb * B + j] = acc;
    }
}

// RELU: y = max(0, BN(x)) in the same pass (a BN followed by a ReLU); the backward then takes that output and
// applies its mask (dy where y > 0) while reading dy, so the ReLU costs no pass of its own either way.
template <int B, bool RELU>
void bn_train_blocked(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                      float* running_mean, float* running_var, float momentum, float eps, float* y,
                      float* save_mean, float* save_invstd, BatchNormSync* sync) {
  const int64_t CB = C / B, count = N * HW, P = N * CB;
  const bool par = N * C * HW > (1 << 14);
  std::vector<float> part(static_cast<size_t>(P * B)), mean(static_cast<size_t>(C)), a(static_cast<size_t>(C)),
      b(static_cast<size_t>(C));
  std::vector<double> sum(static_cast<size_t>(C)), sq(static_cast<size_t>(C));
#pragma omp parallel for schedule(static) if (par)
  for (int64_t p = 0; p < P; ++p) {
    const float* xp = x + p * HW * B;
    float s[B] = {};
    for (int64_t i = 0; i < HW; ++i)
#pragma omp simd
      for (int j = 0; j < B; ++j) s[j] += xp[i * B + j];
    for (int j = 0; j < B; ++j) part[static_cast<size_t>(p * B + j)] = s[j];
  }
  reduce_planes<B>(N, CB, part, sum.data());
  for (int64_t c = 0; c < C; ++c) mean[c] = static_cast<float>(sum[c] / static_cast<double>(count));
#pragma omp parallel for schedule(static) if (par)
  for (int64_t p = 0; p < P; ++p) {
    const float* xp = x + p * HW * B;
    const float* m = mean.data() + (p % CB) * B;
    float s[B] = {};
    for (int64_t i = 0; i < HW; ++i)
#pragma omp simd
      for (int j = 0; j < B; ++j) {
        const float d = xp[i * B + j] - m[j];
        s[j] += d * d;
      }
    for (int j = 0; j < B; ++j) part[static_cast<size_t>(p * B + j)] = s[j];
  }
  reduce_planes<B>(N, CB, part, sq.data());
  // sum -> mean; with --sync-bn, (count, mean, M2) become every replica's together.
  double n_all = static_cast<double>(count);
  for (int64_t c = 0; c < C; ++c) sum[c] /= static_cast<double>(count);
  if (sync) {
    sync_moments(*sync, C, n_all, sum.data(), sq.data());
    for (int64_t c = 0; c < C; ++c) mean[c] = static_cast<float>(sum[c]);
  }
  for (int64_t c = 0; c < C; ++c) {
    const double m = sum[c];
    const double var = sq[c] / n_all;
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    save_mean[c] = static_cast<float>(m);
    save_invstd[c] = static_cast<float>(invstd);
    const double unbiased = n_all > 1.0 ? sq[c] / (n_all - 1.0) : var;
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * m);
    running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    a[c] = static_cast<float>(invstd * gamma[c]);
    b[c] = beta[c];
  }
#pragma omp parallel for schedule(static) if (par)
  for (int64_t p = 0; p < P; ++p) {
    const int64_t c0 = (p % CB) * B;
    const float *xp = x + p * HW * B, *m = mean.data() + c0, *ap = a.data() + c0, *bp = b.data() + c0;
    float* q = y + p * HW * B;
    for (int64_t i = 0; i < HW; ++i)
#pragma omp simd
      for (int j = 0; j < B; ++j) {
        const float v = (xp[i * B + j] - m[j]) * ap[j] + bp[j];
        q[i * B + j] = RELU ? (v > 0.0f ? v : 0.0f) : v;
      }
  }
}

template <int B, bool RELU>
void bn_eval_blocked(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                     const float* running_mean, const float* running_var, float eps, float* y) {
  const int64_t CB = C / B;
#pragma omp parallel for schedule(static) if (N * C * HW > (1 << 14))
  for (int64_t p = 0; p < N * CB; ++p) {
    const int64_t cb = p % CB;
    float m[B], a[B], b[B];
    for (int j = 0; j < B; ++j) {
      const int64_t c = cb * B + j;
      const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
      m[j] = running_mean[c], a[j] = static_cast<float>(invstd * gamma[c]), b[j] = beta[c];
    }
    const float* xp = x + p * HW * B;
    float* yp = y + p * HW * B;
    for (int64_t i = 0; i < HW; ++i)
#pragma omp simd
      for (int j = 0; j < B; ++j) {
        const float v = (xp[i * B + j] - m[j]) * a[j] + b[j];
        yp[i * B + j] = RELU ? (v > 0.0f ? v : 0.0f) : v;
      }
  }
}

// RELU: relu_y is the fused forward's output; the gradient reaching the BN is dy where relu_y > 0, else 0.
template <int B, bool RELU>
void bn_backward_blocked(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* relu_y,
                         const float* gamma, const float* save_mean, const float* save_invstd, float* dx,
                         float* dgamma, float* dbeta, BatchNormSync* sync) {
  const int64_t CB = C / B, P = N * CB;
  const bool par = N * C * HW > (1 << 14);
  std::vector<float> part_dy(static_cast<size_t>(P * B)), part_xc(static_cast<size_t>(P * B));
  std::vector<float> fk(static_cast<size_t>(C)), fa(static_cast<size_t>(C)), fb(static_cast<size_t>(C));
  std::vector<double> sum_dy(static_cast<size_t>(C)), sum_dy_xc(static_cast<size_t>(C));
#pragma omp parallel for schedule(static) if (par)
  for (int64_t p = 0; p < P; ++p) {
    const float *xp = x + p * HW * B, *gp = dy + p * HW * B, *m = save_mean + (p % CB) * B;
    const float* rp = RELU ? relu_y + p * HW * B : nullptr;
    float s[B] = {}, sx[B] = {};
    for (int64_t i = 0; i < HW; ++i)
#pragma omp simd
      for (int j = 0; j < B; ++j) {
        const float g0 = gp[i * B + j];
        const float g = RELU ? (rp[i * B + j] > 0.0f ? g0 : 0.0f) : g0;
        s[j] += g;
        sx[j] += g * (xp[i * B + j] - m[j]);
      }
    for (int j = 0; j < B; ++j) {
      part_dy[static_cast<size_t>(p * B + j)] = s[j];
      part_xc[static_cast<size_t>(p * B + j)] = sx[j];
    }
  }
  reduce_planes<B>(N, CB, part_dy, sum_dy.data());
  reduce_planes<B>(N, CB, part_xc, sum_dy_xc.data());
  for (int64_t c = 0; c < C; ++c) {
    dbeta[c] = static_cast<float>(sum_dy[c]);
    dgamma[c] = static_cast<float>(sum_dy_xc[c] * static_cast<double>(save_invstd[c]));
  }
  double count = static_cast<double>(N * HW);
  if (sync) {
    // dgamma and dbeta stay this replica's (the gradient all-reduce averages them); dx takes every replica's sums.
    std::vector<double> sums(static_cast<size_t>(2 * C + 1));
    for (int64_t c = 0; c < C; ++c) sums[c] = sum_dy[c], sums[C + c] = sum_dy_xc[c];
    sums[2 * C] = count;
    sync_sums(*sync, 2 * C + 1, sums.data());
    for (int64_t c = 0; c < C; ++c) sum_dy[c] = sums[c], sum_dy_xc[c] = sums[C + c];
    count = sums[2 * C];
  }
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = save_invstd[c];
    const double k = static_cast<double>(gamma[c]) * invstd;
    const double mdy = sum_dy[c] / count;
    const double proj = sum_dy_xc[c] / count * invstd * invstd;
    fk[c] = static_cast<float>(k), fa[c] = static_cast<float>(-k * proj), fb[c] = static_cast<float>(-k * mdy);
  }
  if (!dx) return;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t p = 0; p < P; ++p) {
    const int64_t c0 = (p % CB) * B;
    const float *xp = x + p * HW * B, *gp = dy + p * HW * B, *m = save_mean + c0;
    const float *kp = fk.data() + c0, *ap = fa.data() + c0, *bp = fb.data() + c0;
    const float* rp = RELU ? relu_y + p * HW * B : nullptr;
    float* dp = dx + p * HW * B;
    for (int64_t i = 0; i < HW; ++i)
#pragma omp simd
      for (int j = 0; j < B; ++j) {
        const float g0 = gp[i * B + j];
        const float g = RELU ? (rp[i * B + j] > 0.0f ? g0 : 0.0f) : g0;
        dp[i * B + j] = kp[j] * g + ap[j] * (xp[i * B + j] - m[j]) + bp[j];
      }
  }
}

template <int B, bool RELU>
struct BnTrain {
  template <typename... A>
  static void run(A... a) { bn_train_blocked<B, RELU>(a...); }
};
template <int B, bool RELU>
struct BnEval {
  template <typename... A>
  static void run(A... a) { bn_eval_blocked<B, RELU>(a...); }
};
template <int B, bool RELU>
struct BnBackward {
  template <typename... A>
  static void run(A... a) { bn_backward_blocked<B, RELU>(a...); }
};

void check_block(const char* op, int64_t C, int64_t B, bool relu) {
  ISLKD_CHECK(B == 1 || B == 8 || B == 16, op, ": channel block must be 1, 8 or 16 (nChw8c, nChw16c), got ", B);
  ISLKD_CHECK(C % B == 0, op, ": ", C, " channels are not a multiple of the channel block ", B);
  ISLKD_CHECK(!relu || B > 1, op, ": the fused ReLU is for blocked layouts (plain NCHW runs BN, then ReLU)");
}

// Calls F<B, RELU>::run(args...) for the runtime block B (8 or 16) and relu flag.
template <template <int, bool> class F, typename... Args>
void dispatch_block(int64_t B, bool relu, Args&&... args) {
  if (B == 16)
    relu ? F<16, true>::run(args...) : F<16, false>::run(args...);
  else
    relu ? F<8, true>::run(args...) : F<8, false>::run(args...);
}

}  // namespace

void batch_norm_forward_train_blocked(int64_t N, int64_t C, int64_t HW, int64_t B, const float* x,
                                      const float* gamma, const float* beta, float* running_mean,
                                      float* running_var, float momentum, float eps, float* y, float* save_mean,
                                      float* save_invstd, bool relu, BatchNormSync* sync) {
  check_block("batch_norm_forward_train_blocked", C, B, relu);
  if (B == 1 && sync)
    bn_train_plain_synced(N, C, HW, x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean,
                          save_invstd, *sync);
  else if (B == 1)
    batch_norm_forward_train(N, C, HW, x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean,
                             save_invstd);
  else
    dispatch_block<BnTrain>(B, relu, N, C, HW, x, gamma, beta, running_mean, running_var, momentum, eps, y,
                            save_mean, save_invstd, sync);
}

void batch_norm_forward_eval_blocked(int64_t N, int64_t C, int64_t HW, int64_t B, const float* x,
                                     const float* gamma, const float* beta, const float* running_mean,
                                     const float* running_var, float eps, float* y, bool relu) {
  check_block("batch_norm_forward_eval_blocked", C, B, relu);
  if (B == 1)
    batch_norm_forward_eval(N, C, HW, x, gamma, beta, running_mean, running_var, eps, y);
  else
    dispatch_block<BnEval>(B, relu, N, C, HW, x, gamma, beta, running_mean, running_var, eps, y);
}

void batch_norm_backward_blocked(int64_t N, int64_t C, int64_t HW, int64_t B, const float* x, const float* dy,
                                 const float* gamma, const float* save_mean, const float* save_invstd, float* dx,
                                 float* dgamma, float* dbeta, const float* relu_y, BatchNormSync* sync) {
  check_block("batch_norm_backward_blocked", C, B, relu_y != nullptr);
  if (B == 1 && sync)
    bn_backward_plain_synced(N, C, HW, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, *sync);
  else if (B == 1)
    batch_norm_backward(N, C, HW, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
  else
    dispatch_block<BnBackward>(B, relu_y != nullptr, N, C, HW, x, dy, relu_y, gamma, save_mean, save_invstd, dx,
                               dgamma, dbeta, sync);
}

}  // namespace islkd::cpu
