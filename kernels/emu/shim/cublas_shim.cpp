// The cuBLAS subset kernels/cuda/linear.cu calls: handles, streams and cublasSgemm with cuBLAS's column-major
// semantics, computed by oneDNN's (row-major) sgemm on the swapped problem C^T = op(B)^T op(A)^T.
#include <cublas_v2.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "kernels/emu/shim/shim_internal.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

std::mutex handles_mu;
std::set<cublasHandle_t>& handles() {
  static auto* h = new std::set<cublasHandle_t>;
  return *h;
}
bool valid(cublasHandle_t h) {
  std::lock_guard<std::mutex> lock(handles_mu);
  return handles().count(h) != 0;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  std::lock_guard<std::mutex> lock(handles_mu);
  handles().insert(*handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  std::lock_guard<std::mutex> lock(handles_mu);
  if (handles().erase(handle) == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;  // the CPU backend computes in FP32 whatever the mode
  return CUBLAS_STATUS_SUCCESS;
}

// C (m x n, ldc) = alpha * op(A) * op(B) + beta * C, all column-major; alpha and beta are host pointers (the
// default CUBLAS_POINTER_MODE_HOST). beta == 0 ignores C's old contents (NaN included), as cuBLAS does.
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc) {
  using islkd_cuda_shim::detail::explain;
  using islkd_cuda_shim::detail::is_device_range;
  if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  if ((transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) || (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T) ||
      m < 0 || n < 0 || k < 0 || alpha == nullptr || beta == nullptr || lda < std::max(1, ta ? k : m) ||
      ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m)) {
    explain("cublasSgemm", "invalid operation, size or leading dimension");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  // Every matrix a kernel reads must be device memory: the footprint of a column-major rows x cols matrix.
  auto footprint = [](int rows, int cols, int ld) { return (static_cast<size_t>(cols - 1) * ld + rows) * 4; };
  if (!is_device_range(C, footprint(m, n, ldc)) ||
      (k > 0 && (!is_device_range(A, footprint(ta ? k : m, ta ? m : k, lda)) ||
                 !is_device_range(B, footprint(tb ? n : k, tb ? k : n, ldb))))) {
    explain("cublasSgemm", "A, B or C is not device memory of the size the leading dimensions imply");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  islkd_cuda_shim::detail::counters().sgemms++;
  islkd_cuda_shim::detail::counters().last_gemm_math_mode = static_cast<int>(handle->math);
  const float a = *alpha, b = *beta;
  if (b == 0.0f)
    for (int j = 0; j < n; ++j) std::fill(C + static_cast<size_t>(j) * ldc, C + static_cast<size_t>(j) * ldc + m, 0.0f);
  if (k == 0 || a == 0.0f) {
    if (b != 0.0f)
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) C[static_cast<size_t>(j) * ldc + i] *= b;
    return CUBLAS_STATUS_SUCCESS;
  }
  // Row-major view: C^T is n x m with leading dimension ldc; B's memory is op(B)^T when transb is N.
  const dnnl_status_t st =
      dnnl_sgemm(tb ? 'T' : 'N', ta ? 'T' : 'N', n, m, k, a, B, ldb, A, lda, b, C, ldc);
  return st == dnnl_success ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // extern "C"
