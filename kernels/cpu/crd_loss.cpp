// CRD's contrast against a memory bank on the CPU (Tian et al. 2020; RepDistiller crd/memory.py ContrastMemory and
// crd/criterion.py ContrastLoss, one side of the symmetric pair), and the bank's momentum update.
//
// Forward, for anchors u [B, D] (an Embed's linear output; Embed's Normalize is fused: v_b = u_b / |u_b|, no eps as
// upstream), a bank M [N, D] and index rows idx[b] = [positive, K negatives] (K1 = K + 1 columns):
//   e_bk = exp(<M[idx_bk], v_b> / T); on the first call (*z < 0) Z = mean(e) * N is fixed (ContrastMemory's Z, a
//   constant from then on, also for autograd: upstream takes .item()); P_bk = e_bk / Z;
//   L = -(sum_b log(P_b0 / (P_b0 + c)) + sum_{b,k>=1} log(a / (P_bk + c))) / B, a = K / N (m * Pn), c = a + 1e-7.
// Backward (formed in the same sweep: the bank rows are read before the update the caller runs after this):
//   dL/ds_b0 = -c / ((P_b0 + c) B T),  dL/ds_bk = P_bk / ((P_bk + c) B T),  g_b = sum_k dL/ds_bk M[idx_bk],
//   dL/du_b = (g_b - v_b <g_b, v_b>) / |u_b|.
// The gathered rows are never materialised (B x K1 x D): each dot reads its bank row by index. Per-row work in
// double except the dots and the gradient's row sums (float, vectorised, fixed order), rows in parallel, the row losses
// and Z's sum added in order: the same bits on every run.
#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {

constexpr double kContrastEps = 1e-7;  // crd/criterion.py eps
constexpr int kLanes = 16;             // the dot's partial sums: one AVX-512 (two AVX2) register of floats

// <a, b> with kLanes float partial sums in a fixed order (vectorised, the same bits on every run), added in double.
// The K + 1 dots per anchor are the kernel's whole cost (B x (K + 1) x D multiply-adds per side, twice).
double dot(const float* a, const float* b, int64_t D) {
  float acc[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[d + j] * b[d + j];
  double s = 0;
  for (; d < D; ++d) s += static_cast<double>(a[d]) * b[d];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

}  // namespace

float crd_contrast_forward_backward(int64_t B, int64_t K1, int64_t D, int64_t N, const float* u, const float* memory,
                                    const int32_t* idx, float T, float* z, float* du) {
  ISLKD_CHECK(B >= 1 && K1 >= 2 && D >= 1 && N >= 1, "crd_contrast: empty inputs (B ", B, ", K+1 ", K1, ", D ", D,
              ", N ", N, ")");
  for (int64_t i = 0; i < B * K1; ++i)
    ISLKD_CHECK(idx[i] >= 0 && idx[i] < N, "crd_contrast: index ", idx[i], " at row ", i / K1, ", column ", i % K1,
                " is outside the memory's ", N, " rows");
  std::vector<double> e(static_cast<size_t>(B * K1)), inv_norm(static_cast<size_t>(B));
  std::vector<float> v(static_cast<size_t>(B * D));
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const float* ub = u + b * D;
    double n2 = 0;
    for (int64_t d = 0; d < D; ++d) n2 += static_cast<double>(ub[d]) * ub[d];
    const double inv = 1.0 / std::sqrt(n2);
    inv_norm[b] = inv;
    for (int64_t d = 0; d < D; ++d) v[b * D + d] = static_cast<float>(ub[d] * inv);
    for (int64_t k = 0; k < K1; ++k)
      e[b * K1 + k] = std::exp(dot(memory + static_cast<int64_t>(idx[b * K1 + k]) * D, v.data() + b * D, D) / T);
  }
  if (*z < 0.0f) {
    double sum = 0;
    for (double x : e) sum += x;
    *z = static_cast<float>(sum / static_cast<double>(B * K1) * static_cast<double>(N));
  }
  const double Z = *z, a = static_cast<double>(K1 - 1) / static_cast<double>(N), c = a + kContrastEps;
  const double scale = 1.0 / (static_cast<double>(B) * T);
  std::vector<double> row_loss(static_cast<size_t>(B));
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const double p0 = e[b * K1] / Z;
    double l = std::log(p0 / (p0 + c));
    for (int64_t k = 1; k < K1; ++k) l += std::log(a / (e[b * K1 + k] / Z + c));
    row_loss[b] = l;
    if (!du) continue;
    std::vector<float> g(static_cast<size_t>(D), 0.0f);  // float: vectorised; K + 1 terms of one sign mostly
    for (int64_t k = 0; k < K1; ++k) {
      const double p = e[b * K1 + k] / Z;
      const float w = static_cast<float>(k == 0 ? -c / (p + c) * scale : p / (p + c) * scale);
      const float* m = memory + static_cast<int64_t>(idx[b * K1 + k]) * D;
      for (int64_t d = 0; d < D; ++d) g[d] += w * m[d];
    }
    double gv = 0;
    for (int64_t d = 0; d < D; ++d) gv += static_cast<double>(g[d]) * v[b * D + d];
    for (int64_t d = 0; d < D; ++d)
      du[b * D + d] = static_cast<float>((g[d] - static_cast<double>(v[b * D + d]) * gv) * inv_norm[b]);
  }
  double loss = 0;
  for (double l : row_loss) loss += l;
  return static_cast<float>(-loss / static_cast<double>(B));
}

// M[y_b] = normalize(momentum * M[y_b] + (1 - momentum) * u_b / |u_b|) (ContrastMemory's update, under no_grad);
// y_b = -1 skips row b (the caller's way to keep only one row of an instance repeated in the batch).
void crd_memory_update(int64_t B, int64_t D, int64_t N, float* memory, const float* u, const int32_t* y,
                       float momentum) {
  for (int64_t b = 0; b < B; ++b)
    ISLKD_CHECK(y[b] >= -1 && y[b] < N, "crd_memory_update: instance ", y[b], " at row ", b, " is outside the memory's ",
                N, " rows");
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    if (y[b] < 0) continue;
    const float* ub = u + b * D;
    float* m = memory + static_cast<int64_t>(y[b]) * D;
    double n2 = 0;
    for (int64_t d = 0; d < D; ++d) n2 += static_cast<double>(ub[d]) * ub[d];
    const double inv = 1.0 / std::sqrt(n2);
    std::vector<double> r(static_cast<size_t>(D));
    double r2 = 0;
    for (int64_t d = 0; d < D; ++d) {
      r[d] = momentum * static_cast<double>(m[d]) + (1.0 - momentum) * ub[d] * inv;
      r2 += r[d] * r[d];
    }
    const double rinv = 1.0 / std::sqrt(r2);
    for (int64_t d = 0; d < D; ++d) m[d] = static_cast<float>(r[d] * rinv);
  }
}

}  // namespace islkd::cpu
