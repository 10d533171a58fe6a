// The relational distillation losses on the CPU: similarity preserving (SP), probabilistic knowledge transfer (PKT)
// and relational KD (RKD), each over a batch of flattened features (student N x Ds, teacher N x Dt), forward and
// dL/dstudent in one pass. They compare N x N (RKD's angle: N x N x N) relations between the instances of a batch,
// so the work is O(N^2 D) (RKD: O(N^3 D)); sums run in double. The teacher is a constant.
//
// SP (Tung & Mori 2019; RepDistiller distiller_zoo/SP.py): G = f f^T, each row L2-normalised (F.normalize, eps 1e-12),
//   L = sum_ij (Gt_ij - Gs_ij)^2 / N^2. Backward: dGs_n = 2 (Gs_n - Gt_n) / N^2, through the row normalisation
//   (dg = (dy - y <y, dy>) / |g| when |g| > eps, dy / eps otherwise), then df = (dG + dG^T) f.
// PKT (Passalis & Tefas 2018; RepDistiller distiller_zoo/PKT.py, eps 1e-7): x = f / (|f| + eps) per row,
//   P = (x x^T + 1) / 2, Q = P / rowsum(P); L = mean_ij Qt_ij log((Qt_ij + eps) / (Qs_ij + eps)).
//   Backward: a = dL/dQs = -Qt / (Qs + eps) / N^2, dP_ij = (a_ij - <a_i, Qs_i>) / r_i, dx = (dM + dM^T) x with
//   dM = dP / 2, then ds = dx / (n + eps) - s <s, dx> / (n (n + eps)^2).
// RKD (Park et al. 2019; RepDistiller distiller_zoo/RKD.py; w_d, w_a passed in):
//   distance: d_ij = sqrt(max(|f_i|^2 + |f_j|^2 - 2 <f_i, f_j>, 1e-12)) off the diagonal, 0 on it (pdist), divided by
//   its mean over the off-diagonal (d > 0) entries; L_d = mean over N^2 of smooth_l1(ds - dt) (beta 1).
//   angle: e_ij = normalize(f_j - f_i) (F.normalize, eps 1e-12), A_ijk = <e_ij, e_ik>; L_a = mean over N^3 of
//   smooth_l1(As - At). L = w_d L_d + w_a L_a.
//   Backward (student): distance g_ij = w_d sl1'(.) / N^2, dd_ij = g_ij / m - <g, d> / (m^2 (N^2 - N)) off the
//   diagonal (the mean depends on the student; the zeroed diagonal passes nothing), dc = dd / (2 d) where the clamp
//   is inactive, df_a = sum_j 2 (dc_aj + dc_ja) (f_a - f_j). Angle, per anchor i: g_jk = w_a sl1'(.) / N^3,
//   de_ij = sum_k (g_jk + g_kj) e_ik, through the normalisation to dv_ij, then df_j += dv_ij, df_i -= dv_ij.
//   A batch of one has no pairs: upstream's mean over an empty set is NaN; here the loss and gradient are 0.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {

constexpr double kNormalizeEps = 1e-12;  // F.normalize's default (SP's Gram rows, RKD's angle vectors)
constexpr double kPktEps = 1e-7;         // PKT.py cosine_similarity_loss(eps=0.0000001)
constexpr double kPdistEps = 1e-12;      // RKD.py pdist(eps=1e-12): the squared distance is clamped to it

// G = f f^T (N x N) in double.
std::vector<double> gram(int64_t N, int64_t D, const float* f) {
  std::vector<double> G(static_cast<size_t>(N * N));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = i; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += static_cast<double>(f[i * D + k]) * f[j * D + k];
      G[i * N + j] = G[j * N + i] = s;
    }
  return G;
}

// Row i of y = g / max(|g|, eps) in place; returns the divisor and whether |g| > eps.
double normalize_row(double* g, int64_t n, bool* above) {
  double s = 0;
  for (int64_t k = 0; k < n; ++k) s += g[k] * g[k];
  const double norm = std::sqrt(s), d = std::max(norm, kNormalizeEps);
  for (int64_t k = 0; k < n; ++k) g[k] /= d;
  *above = norm > kNormalizeEps;
  return d;
}

// dy -> dg through y = g / max(|g|, eps) (y given), in place.
void normalize_backward(const double* y, double* dy, int64_t n, double d, bool above) {
  double dot = 0;
  if (above)
    for (int64_t k = 0; k < n; ++k) dot += y[k] * dy[k];
  for (int64_t k = 0; k < n; ++k) dy[k] = (dy[k] - y[k] * dot) / d;
}

// df (N x D) = (dG + dG^T) f.
void gram_backward(int64_t N, int64_t D, const float* f, const std::vector<double>& dG, float* df) {
  std::vector<double> acc(static_cast<size_t>(D));
  for (int64_t i = 0; i < N; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t j = 0; j < N; ++j) {
      const double w = dG[i * N + j] + dG[j * N + i];
      if (w == 0) continue;
      for (int64_t k = 0; k < D; ++k) acc[k] += w * f[j * D + k];
    }
    for (int64_t k = 0; k < D; ++k) df[i * D + k] = static_cast<float>(acc[k]);
  }
}

double smooth_l1(double x) { return std::fabs(x) < 1.0 ? 0.5 * x * x : std::fabs(x) - 0.5; }
double smooth_l1_grad(double x) { return std::fabs(x) < 1.0 ? x : (x > 0 ? 1.0 : -1.0); }

}  // namespace

float sp_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                               float* dstudent) {
  ISLKD_CHECK(N >= 1 && Ds >= 1 && Dt >= 1, "sp_loss: empty features (N ", N, ", D ", Ds, "/", Dt, ")");
  std::vector<double> Gs = gram(N, Ds, student), Gt = gram(N, Dt, teacher);
  std::vector<double> d(static_cast<size_t>(N));
  std::vector<char> above(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    bool a = false, b = false;
    d[i] = normalize_row(&Gs[i * N], N, &a);
    above[i] = a;
    normalize_row(&Gt[i * N], N, &b);
  }
  const double inv = 1.0 / static_cast<double>(N * N);
  double loss = 0;
  std::vector<double> dG(static_cast<size_t>(N * N));
  for (int64_t i = 0; i < N * N; ++i) {
    const double diff = Gs[i] - Gt[i];
    loss += diff * diff;
    dG[i] = 2.0 * diff * inv;
  }
  if (dstudent) {
    for (int64_t i = 0; i < N; ++i) normalize_backward(&Gs[i * N], &dG[i * N], N, d[i], above[i]);
    gram_backward(N, Ds, student, dG, dstudent);
  }
  return static_cast<float>(loss * inv);
}

float pkt_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                                float* dstudent) {
  ISLKD_CHECK(N >= 1 && Ds >= 1 && Dt >= 1, "pkt_loss: empty features (N ", N, ", D ", Ds, "/", Dt, ")");
  // Rows normalised by |f| + eps, as PKT.py does (not F.normalize).
  auto unit_rows = [N](int64_t D, const float* f, std::vector<double>* norms) {
    std::vector<float> x(static_cast<size_t>(N * D));
    norms->assign(static_cast<size_t>(N), 0.0);
    for (int64_t i = 0; i < N; ++i) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += static_cast<double>(f[i * D + k]) * f[i * D + k];
      (*norms)[i] = std::sqrt(s);
      for (int64_t k = 0; k < D; ++k) x[i * D + k] = static_cast<float>(f[i * D + k] / ((*norms)[i] + kPktEps));
    }
    return x;
  };
  auto conditional = [N](std::vector<double>& M, std::vector<double>* rowsum) {
    rowsum->assign(static_cast<size_t>(N), 0.0);
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t j = 0; j < N; ++j) (*rowsum)[i] += M[i * N + j] = (M[i * N + j] + 1.0) / 2.0;
      for (int64_t j = 0; j < N; ++j) M[i * N + j] /= (*rowsum)[i];
    }
  };
  std::vector<double> ns, nt, rs, rt;
  const std::vector<float> xs = unit_rows(Ds, student, &ns), xt = unit_rows(Dt, teacher, &nt);
  std::vector<double> Qs = gram(N, Ds, xs.data()), Qt = gram(N, Dt, xt.data());
  conditional(Qs, &rs);
  conditional(Qt, &rt);
  const double inv = 1.0 / static_cast<double>(N * N);
  double loss = 0;
  for (int64_t i = 0; i < N * N; ++i) loss += Qt[i] * std::log((Qt[i] + kPktEps) / (Qs[i] + kPktEps));
  if (dstudent) {
    std::vector<double> dM(static_cast<size_t>(N * N));
    for (int64_t i = 0; i < N; ++i) {
      double dot = 0;
      for (int64_t j = 0; j < N; ++j) dot += -Qt[i * N + j] / (Qs[i * N + j] + kPktEps) * inv * Qs[i * N + j];
      for (int64_t j = 0; j < N; ++j) {
        const double a = -Qt[i * N + j] / (Qs[i * N + j] + kPktEps) * inv;
        dM[i * N + j] = (a - dot) / rs[i] * 0.5;
      }
    }
    std::vector<float> dx(static_cast<size_t>(N * Ds));
    gram_backward(N, Ds, xs.data(), dM, dx.data());
    for (int64_t i = 0; i < N; ++i) {
      const double n = ns[i], c = n + kPktEps;
      double dot = 0;
      for (int64_t k = 0; k < Ds; ++k) dot += static_cast<double>(student[i * Ds + k]) * dx[i * Ds + k];
      const double k2 = n > 0 ? dot / (n * c * c) : 0.0;
      for (int64_t k = 0; k < Ds; ++k)
        dstudent[i * Ds + k] = static_cast<float>(dx[i * Ds + k] / c - student[i * Ds + k] * k2);
    }
  }
  return static_cast<float>(loss * inv);
}

float rkd_loss_forward_backward(int64_t N, int64_t Ds, int64_t Dt, const float* student, const float* teacher,
                                float w_d, float w_a, float* dstudent) {
  ISLKD_CHECK(N >= 1 && Ds >= 1 && Dt >= 1, "rkd_loss: empty features (N ", N, ", D ", Ds, "/", Dt, ")");
  if (dstudent) std::fill(dstudent, dstudent + N * Ds, 0.0f);
  if (N < 2) return 0.0f;
  // Distances, normalised by their off-diagonal mean.
  auto distances = [N](int64_t D, const float* f, std::vector<double>* raw, double* mean) {
    const std::vector<double> G = gram(N, D, f);
    std::vector<double> d(static_cast<size_t>(N * N), 0.0);
    raw->assign(static_cast<size_t>(N * N), 0.0);
    double sum = 0;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        if (i == j) continue;
        const double c = G[i * N + i] + G[j * N + j] - 2.0 * G[i * N + j];
        (*raw)[i * N + j] = c;
        sum += d[i * N + j] = std::sqrt(std::max(c, kPdistEps));
      }
    *mean = sum / static_cast<double>(N * (N - 1));
    return d;
  };
  std::vector<double> cs, ct;
  double ms = 0, mt = 0;
  const std::vector<double> ds = distances(Ds, student, &cs, &ms), dt = distances(Dt, teacher, &ct, &mt);
  const double inv2 = 1.0 / static_cast<double>(N * N), inv3 = inv2 / static_cast<double>(N);
  double loss_d = 0, gd = 0;
  std::vector<double> g(static_cast<size_t>(N * N), 0.0);
  for (int64_t i = 0; i < N * N; ++i) {
    const double x = ds[i] / ms - dt[i] / mt;
    loss_d += smooth_l1(x);
    g[i] = w_d * smooth_l1_grad(x) * inv2;
    gd += g[i] * ds[i];
  }
  if (dstudent) {
    std::vector<double> dc(static_cast<size_t>(N * N), 0.0);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        if (i == j || cs[i * N + j] < kPdistEps) continue;
        const double dd = g[i * N + j] / ms - gd / (ms * ms * static_cast<double>(N * (N - 1)));
        dc[i * N + j] = dd / (2.0 * ds[i * N + j]);
      }
    std::vector<double> acc(static_cast<size_t>(Ds));
    for (int64_t a = 0; a < N; ++a) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < N; ++j) {
        const double w = 2.0 * (dc[a * N + j] + dc[j * N + a]);
        if (w == 0) continue;
        for (int64_t k = 0; k < Ds; ++k) acc[k] += w * (static_cast<double>(student[a * Ds + k]) - student[j * Ds + k]);
      }
      for (int64_t k = 0; k < Ds; ++k) dstudent[a * Ds + k] += static_cast<float>(acc[k]);
    }
  }
  // Angles, one anchor i at a time (N x D unit differences per model).
  auto unit_differences = [N](int64_t i, int64_t D, const float* f, std::vector<double>* e, std::vector<double>* n,
                              std::vector<char>* above) {
    e->assign(static_cast<size_t>(N * D), 0.0);
    n->assign(static_cast<size_t>(N), 0.0);
    above->assign(static_cast<size_t>(N), 0);
    for (int64_t j = 0; j < N; ++j) {
      double* r = &(*e)[j * D];
      for (int64_t k = 0; k < D; ++k) r[k] = static_cast<double>(f[j * D + k]) - f[i * D + k];
      bool a = false;
      (*n)[j] = normalize_row(r, D, &a);
      (*above)[j] = a;
    }
  };
  double loss_a = 0;
  std::vector<double> es, et, ns, nt, gA(static_cast<size_t>(N * N)), de(static_cast<size_t>(Ds));
  std::vector<char> as, at;
  for (int64_t i = 0; i < N; ++i) {
    unit_differences(i, Ds, student, &es, &ns, &as);
    unit_differences(i, Dt, teacher, &et, &nt, &at);
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < N; ++k) {
        double a = 0, b = 0;
        for (int64_t x = 0; x < Ds; ++x) a += es[j * Ds + x] * es[k * Ds + x];
        for (int64_t x = 0; x < Dt; ++x) b += et[j * Dt + x] * et[k * Dt + x];
        loss_a += smooth_l1(a - b);
        gA[j * N + k] = w_a * smooth_l1_grad(a - b) * inv3;
      }
    if (!dstudent) continue;
    for (int64_t j = 0; j < N; ++j) {
      std::fill(de.begin(), de.end(), 0.0);
      for (int64_t k = 0; k < N; ++k) {
        const double w = gA[j * N + k] + gA[k * N + j];
        if (w == 0) continue;
        for (int64_t x = 0; x < Ds; ++x) de[x] += w * es[k * Ds + x];
      }
      normalize_backward(&es[j * Ds], de.data(), Ds, ns[j], as[j]);
      for (int64_t x = 0; x < Ds; ++x) {
        dstudent[j * Ds + x] += static_cast<float>(de[x]);
        dstudent[i * Ds + x] -= static_cast<float>(de[x]);
      }
    }
  }
  return static_cast<float>(w_d * loss_d * inv2 + w_a * loss_a * inv3);
}

}  // namespace islkd::cpu
