// Per-instance difficulty scores for the ISL curriculum (lower = easier), from a frozen snapshot student's logits
// and the teacher's logits, fused like the KD loss (same per-row code: kd_row.h, so `loss` equals the training
// loss of the instance bit for bit).
//   ce         -log softmax(snapshot)[y]                       (teacher not read; may be null)
//   kd         T^2 * KL(softmax(teacher/T) || softmax(snapshot/T))
//   loss       alpha * kd + (1 - alpha) * ce   (the default: the instance's own KD objective)
//   confidence 1 - softmax(snapshot)[y], formed as -expm1(log p_y) so near-certain instances keep their
//              small differences instead of rounding to 0            (teacher not read; may be null)
// One row per OpenMP iteration; per row two sweeps over C logits (maxima, then partition functions), 8 bytes
// read per logit and 4 bytes written per row. No gradient, no scratch.
#include <cmath>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/kd_row.h"

namespace islkd::cpu {

namespace {
constexpr int64_t kParallelMinLogits = 1 << 14;
}  // namespace

void difficulty_scores(int64_t rows, int64_t cols, const float* snapshot, const float* teacher,
                       const int32_t* labels, DifficultyMeasure m, const KDLossParams& p, float* scores) {
  ISLKD_CHECK(rows >= 0 && cols >= 1, "difficulty_scores: needs rows >= 0 and at least one class, got ", rows,
              " x ", cols);
  const bool needs_teacher = m == DifficultyMeasure::KD || m == DifficultyMeasure::Loss;
  ISLKD_CHECK(m == DifficultyMeasure::CE || m == DifficultyMeasure::KD || m == DifficultyMeasure::Loss ||
                  m == DifficultyMeasure::Confidence,
              "difficulty_scores: unknown measure ", static_cast<int>(m));
  ISLKD_CHECK(!needs_teacher || teacher, "difficulty_scores: the kd and loss measures need the teacher's logits");
  if (needs_teacher) {
    ISLKD_CHECK(std::isfinite(p.temperature) && p.temperature > 0.0f,
                "difficulty_scores: temperature must be > 0, got ", p.temperature);
    ISLKD_CHECK(std::isfinite(p.alpha) && p.alpha >= 0.0f && p.alpha <= 1.0f,
                "difficulty_scores: alpha must be in [0, 1], got ", p.alpha);
  }
  for (int64_t r = 0; r < rows; ++r)
    ISLKD_CHECK(labels[r] >= 0 && labels[r] < cols, "difficulty_scores: label ", labels[r], " of row ", r,
                " is out of range [0, ", cols, ")");

  const double T = p.temperature, alpha = p.alpha;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelMinLogits)
  for (int64_t r = 0; r < rows; ++r) {
    const detail::KDRowResult res = detail::kd_row(cols, snapshot + r * cols,
                                                    needs_teacher ? teacher + r * cols : nullptr, labels[r], T,
                                                    alpha, nullptr, 0.0, nullptr);
    double v = 0.0;
    switch (m) {
      case DifficultyMeasure::CE: v = res.ce; break;
      case DifficultyMeasure::KD: v = res.kd; break;
      case DifficultyMeasure::Loss: v = alpha * res.kd + (1.0 - alpha) * res.ce; break;
      case DifficultyMeasure::Confidence: v = -std::expm1(res.log_p_y); break;
    }
    scores[r] = static_cast<float>(v);
  }
}

}  // namespace islkd::cpu
