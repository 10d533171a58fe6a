// Shared by the loss kernels (cross_entropy.cu, kd_loss.cu, difficulty_scores.cu): the deterministic second stage
// that turns per-row losses into means and validates the labels. Defined in cross_entropy.cu.
#pragma once
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda::detail {

// Host copy of the second stage's result.
struct RowLossSummary {
  double sum_a = 0.0, sum_b = 0.0;  // row-order-independent fixed-tree sums of the two per-row arrays
  long long bad_row = -1;           // first row whose label is outside [0, cols), or -1
  int bad_label = 0;                // its label
};

// One small launch (one block) after the per-row kernel: sums a[0..rows) and b[0..rows) (each nullable) in double
// with a fixed reduction tree -- the same bits on every run, no float atomics -- and finds the first bad label.
// Copies the result to the host (this synchronises with the compute stream).
RowLossSummary summarize_row_losses(int64_t rows, int64_t cols, const int32_t* labels, const float* a,
                                    const float* b);
// The same summary left on the device (rows >= 1; no host wait), for launchers that finish on the device.
void summarize_row_losses_on_device(int64_t rows, int64_t cols, const int32_t* labels, const float* a,
                                    const float* b, RowLossSummary* out);

}  // namespace islkd::cuda::detail
