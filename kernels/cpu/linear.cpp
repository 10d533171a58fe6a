// CPU fully-connected layer through oneDNN's sgemm (row-major). Chosen over OpenBLAS because oneDNN here runs
// on the same OpenMP thread pool as every other CPU op (Debian's OpenBLAS brings its own pthreads and would
// oversubscribe the cores), and its partitioning is fixed for a given thread count (deterministic results).
// The bias gradient is a column sum over dy (sum_rows: fixed summation order).
#include <dnnl.hpp>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {
void gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  dnnl::status st = dnnl::sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  ISLKD_CHECK(st == dnnl::status::success, "linear: oneDNN sgemm failed (M ", M, ", N ", N, ", K ", K, ")");
}
}  // namespace

void linear_forward(int64_t M, int64_t K, int64_t N, const float* x, const float* w, const float* b, float* y) {
  if (M == 0 || N == 0) return;
  float beta = 0.0f;
  if (b) {
    for (int64_t m = 0; m < M; ++m) copy(b, y + m * N, N);
    beta = 1.0f;
  }
  if (K == 0) {
    if (!b) fill(y, 0.0f, M * N);
    return;
  }
  gemm('N', 'T', M, N, K, x, K, w, K, beta, y, N);  // y = x w^T (+ b)
}

void linear_backward(int64_t M, int64_t K, int64_t N, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  if (dx) {
    if (N == 0 || M == 0)
      fill(dx, 0.0f, M * K);
    else if (K > 0)
      gemm('N', 'N', M, K, N, dy, N, w, K, 0.0f, dx, K);  // dx = dy w
  }
  if (dw) {
    if (M == 0 || N == 0)
      fill(dw, 0.0f, N * K);
    else if (K > 0)
      gemm('T', 'N', N, K, M, dy, N, x, K, 0.0f, dw, K);  // dw = dy^T x
  }
  if (db) sum_rows(dy, M, N, db);
}

}  // namespace islkd::cpu
