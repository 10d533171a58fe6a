// Linear layers through cuBLAS: y[M,N] = x[M,K] w[N,K]^T + b and its backward, all row-major on our side.
// cuBLAS is column-major, so each product is written for the transposed matrices (a row-major A[r,c] is a
// column-major c x r matrix):  y^T = w * x^T  (Sgemm T,N),  dx^T = w^T * dy^T  (N,N),  dw^T = x^T * dy  (N,T).
// The bias is broadcast into y first (broadcast_rows_kernel, 4 B/element written) and the GEMM accumulates with
// beta = 1; db is sum_rows(dy). FP32 GEMM: CUBLAS_DEFAULT_MATH (no TF32) unless set_tf32_allowed(true) asks for
// CUBLAS_TF32_TENSOR_OP_MATH; the mode is set on the handle before each GEMM (one host-side call, no device work).
#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/vendor.h"

namespace islkd::cuda {
namespace {

constexpr int kThreads = 256;

// y[m, n] = b[n] for an M x N row-major y.
__global__ void broadcast_rows_kernel(const float* b, float* y, int64_t cols, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = b[i % cols];
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t t = nullptr;
    ISLKD_CUBLAS_CHECK(cublasCreate(&t));
    ISLKD_CUBLAS_CHECK(cublasSetStream(t, compute_stream()));
    return t;
  }();
  return h;
}

// The handle with the math mode of the current setting, counted as one cuBLAS call per GEMM.
cublasHandle_t gemm_handle() {
  cublasHandle_t h = cublas();
  ISLKD_CUBLAS_CHECK(cublasSetMathMode(h, tf32_allowed() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  detail::count_cublas_call();
  return h;
}

int to_int(int64_t v, const char* what) {
  ISLKD_CHECK(v >= 0 && v <= INT_MAX, "linear (cuBLAS): ", what, " = ", v, " does not fit cuBLAS's int sizes");
  return static_cast<int>(v);
}

}  // namespace

void linear_forward(int64_t M, int64_t K, int64_t N, const float* x, const float* w, const float* b, float* y) {
  if (M == 0 || N == 0) return;
  const int m = to_int(M, "M"), k = to_int(K, "K"), n = to_int(N, "N");
  float beta = 0.0f;
  if (b != nullptr) {
    ISLKD_LAUNCH(broadcast_rows_kernel, elementwise_blocks(M * N, kThreads), kThreads, 0, compute_stream(), b, y, N,
                 M * N);
    ISLKD_CUDA_CHECK_LAUNCH();
    beta = 1.0f;
  }
  const float one = 1.0f;
  // y^T (N x M, ld N) = w (as T of the column-major K x N) * x^T (K x M, ld K)
  ISLKD_CUBLAS_CHECK(cublasSgemm(gemm_handle(), CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, k > 0 ? k : 1, x,
                                 k > 0 ? k : 1, &beta, y, n));
}

void linear_backward(int64_t M, int64_t K, int64_t N, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  const int m = to_int(M, "M"), k = to_int(K, "K"), n = to_int(N, "N");
  const float one = 1.0f, zero = 0.0f;
  if (dx != nullptr && M > 0 && K > 0) {
    if (N == 0)
      fill(dx, 0.0f, M * K);
    else  // dx^T (K x M, ld K) = w^T (column-major K x N, ld K) * dy^T (N x M, ld N)
      ISLKD_CUBLAS_CHECK(cublasSgemm(gemm_handle(), CUBLAS_OP_N, CUBLAS_OP_N, k, m, n, &one, w, k, dy, n, &zero, dx, k));
  }
  if (dw != nullptr && N > 0 && K > 0) {
    if (M == 0)
      fill(dw, 0.0f, N * K);
    else  // dw^T (K x N, ld K) = x^T (K x M, ld K) * dy (transpose of the column-major N x M dy^T)
      ISLKD_CUBLAS_CHECK(cublasSgemm(gemm_handle(), CUBLAS_OP_N, CUBLAS_OP_T, k, n, m, &one, x, k, dy, n, &zero, dw, k));
  }
  if (db != nullptr && N > 0) sum_rows(dy, M, N, db);
}

}  // namespace islkd::cuda
