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
// RKD (Park et al. 2019; RepDistiller distiller_zoo/RKD.py, w_d 25, w_a 50 passed in): see rkd_loss_forward_backward.
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

}  // namespace islkd::cpu
