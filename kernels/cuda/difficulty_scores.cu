// Per-instance difficulty scores for the ISL curriculum on CUDA (lower = easier), same semantics as
// kernels/cpu/difficulty_scores.cpp, from the same row statistics as the KD loss (kd_row.cuh):
//   ce         -log softmax(snapshot)[y]                       (teacher not read; may be null)
//   kd         T^2 * KL(softmax(teacher/T) || softmax(snapshot/T))
//   loss       alpha * kd + (1 - alpha) * ce   (the default)
//   confidence 1 - softmax(snapshot)[y], as -expm1(log p_y) so near-certain instances keep their differences
// Work split: one block per row (32..256 threads by C, as the KD loss); one online sweep reads each logit once
// (no gradient, so nothing to stage). Napkin math: 8 bytes read per logit pair (4 without the teacher), 4 bytes
// written per row, 3 exp per logit. Labels are validated by the shared summary stage (row_losses.cuh), which
// throws islkd::Error naming the first bad row like the CPU.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/kd_row.cuh"
#include "kernels/cuda/row_losses.cuh"

namespace islkd::cuda {

namespace {

template <bool kTeacher>
__global__ void difficulty_scores_kernel(int64_t cols, int measure, float T, float alpha,
                                         const float* __restrict__ snapshot, const float* __restrict__ teacher,
                                         const int32_t* __restrict__ labels, float* __restrict__ scores) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* s = snapshot + r * cols;
  const float* t = kTeacher ? teacher + r * cols : nullptr;
  const int32_t y = labels[r];
  const bool valid = y >= 0 && y < cols;
  const detail::KDRowStats st = detail::kd_row_stats<kTeacher>(cols, s, t, 1.0f / T, nullptr, nullptr, scratch);
  if (threadIdx.x == 0) {
    const float log_p_y = valid ? detail::log_p_label(st, s[y]) : NAN;
    const float kd = kTeacher ? detail::kd_from_stats(st, T) : 0.0f;
    float v = 0.0f;
    switch (static_cast<DifficultyMeasure>(measure)) {
      case DifficultyMeasure::CE: v = -log_p_y; break;
      case DifficultyMeasure::KD: v = kd; break;
      case DifficultyMeasure::Loss: v = alpha * kd - (1.0f - alpha) * log_p_y; break;
      case DifficultyMeasure::Confidence: v = -expm1f(log_p_y); break;
    }
    scores[r] = v;
  }
}

}  // namespace

void difficulty_scores(int64_t rows, int64_t cols, const float* snapshot, const float* teacher,
                       const int32_t* labels, DifficultyMeasure m, const KDLossParams& p, float* scores) {
  ISLKD_CHECK(rows >= 0 && cols >= 1, "difficulty_scores: needs rows >= 0 and at least one class, got ", rows,
              " x ", cols);
  ISLKD_CHECK(m == DifficultyMeasure::CE || m == DifficultyMeasure::KD || m == DifficultyMeasure::Loss ||
                  m == DifficultyMeasure::Confidence,
              "difficulty_scores: unknown measure ", static_cast<int>(m));
  const bool needs_teacher = m == DifficultyMeasure::KD || m == DifficultyMeasure::Loss;
  ISLKD_CHECK(!needs_teacher || teacher, "difficulty_scores: the kd and loss measures need the teacher's logits");
  if (needs_teacher) {
    ISLKD_CHECK(std::isfinite(p.temperature) && p.temperature > 0.0f,
                "difficulty_scores: temperature must be > 0, got ", p.temperature);
    ISLKD_CHECK(std::isfinite(p.alpha) && p.alpha >= 0.0f && p.alpha <= 1.0f,
                "difficulty_scores: alpha must be in [0, 1], got ", p.alpha);
  }
  if (rows == 0) return;
  ISLKD_CHECK(rows <= 0x7fffffff, "difficulty_scores: ", rows, " rows exceed one launch's grid");
  const dim3 grid(static_cast<unsigned>(rows)), block(detail::kd_row_threads(cols));
  if (needs_teacher)
    ISLKD_LAUNCH((difficulty_scores_kernel<true>), grid, block, 0, compute_stream(), cols, static_cast<int>(m),
                 p.temperature, p.alpha, snapshot, teacher, labels, scores);
  else
    ISLKD_LAUNCH((difficulty_scores_kernel<false>), grid, block, 0, compute_stream(), cols, static_cast<int>(m),
                 p.temperature, p.alpha, snapshot, teacher, labels, scores);
  ISLKD_CUDA_CHECK_LAUNCH();
  const detail::RowLossSummary sum = detail::summarize_row_losses(rows, cols, labels, nullptr, nullptr);
  ISLKD_CHECK(sum.bad_row < 0, "difficulty_scores: label ", sum.bad_label, " of row ", sum.bad_row,
              " is out of range [0, ", cols, ")");
}

}  // namespace islkd::cuda
