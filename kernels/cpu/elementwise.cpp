// CPU elementwise utilities (fill, copy, add, accumulate, scale, column sums): OpenMP loops over contiguous memory.
#include <omp.h>

#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

// Below this many elements the OpenMP fork/join costs more than the loop.
constexpr int64_t kParallelMin = 1 << 15;

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }

void fill(float* y, float value, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

void copy(const float* x, float* y, int64_t n) {
  if (n > 0) std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}

void add(const float* a, const float* b, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void accumulate(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void scale(const float* x, float s, float* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = s * x[i];
}

void sum_rows(const float* x, int64_t rows, int64_t cols, float* y) {
#pragma omp parallel for if (rows * cols > kParallelMin) schedule(static)
  for (int64_t c = 0; c < cols; ++c) {
    float s = 0.0f;
    for (int64_t r = 0; r < rows; ++r) s += x[r * cols + c];
    y[c] = s;
  }
}

}  // namespace islkd::cpu
