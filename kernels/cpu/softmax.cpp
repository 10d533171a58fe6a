// CPU row-wise softmax (numerically stable: subtract the row max before exp; the normaliser summed in double).
// One OpenMP iteration per row; reads each row twice and writes it twice (exp, then scale): 16 bytes per element,
// with one exp per element (compute-bound only for very short rows, which are tiny anyway).
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::fmax(mx, xr[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      yr[c] = std::exp(xr[c] - mx);
      sum += yr[c];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t c = 0; c < cols; ++c) yr[c] *= inv;
  }
}

}  // namespace islkd::cpu
