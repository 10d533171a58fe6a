// CPU cross-entropy from logits, fused with its gradient: per row, loss = logsumexp(x) - x[label] (stable:
// max-shifted, sum in double) and dlogits = (softmax - onehot) / rows. Labels are validated before any work
// (an exception cannot leave an OpenMP region). The mean adds the row losses in row order, in double, so the
// result does not depend on the thread count.
#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

float cross_entropy_forward_backward(int64_t rows, int64_t cols, const float* logits, const int32_t* labels,
                                     float* row_loss, float* dlogits) {
  for (int64_t r = 0; r < rows; ++r)
    ISLKD_CHECK(labels[r] >= 0 && labels[r] < cols, "cross_entropy: label ", labels[r], " of row ", r,
                " is out of range [0, ", cols, ")");
  if (rows == 0) return 0.0f;
  std::vector<double> loss(static_cast<size_t>(rows));
  const double inv_rows = 1.0 / static_cast<double>(rows);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = logits + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::fmax(mx, xr[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(static_cast<double>(xr[c] - mx));
    const double lse = mx + std::log(sum);
    loss[static_cast<size_t>(r)] = lse - xr[labels[r]];
    if (dlogits) {
      float* dr = dlogits + r * cols;
      for (int64_t c = 0; c < cols; ++c) dr[c] = static_cast<float>(std::exp(xr[c] - lse) * inv_rows);
      dr[labels[r]] = static_cast<float>((std::exp(xr[labels[r]] - lse) - 1.0) * inv_rows);
    }
  }
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    total += loss[static_cast<size_t>(r)];
    if (row_loss) row_loss[r] = static_cast<float>(loss[static_cast<size_t>(r)]);
  }
  return static_cast<float>(total * inv_rows);
}

}  // namespace islkd::cpu
