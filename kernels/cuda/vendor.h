// cuBLAS and cuDNN for the backend's host code: their headers (the cuDNN v7-style API is deprecated in cuDNN 9
// but shipped; its deprecation warnings are switched off here, for our files only) and the checks that turn a
// failed call into an islkd::Error naming the call, file and line.
#pragma once
#undef CUDNN_WARN_DEPRECATED
#include <cublas_v2.h>
#include <cudnn.h>

#include "kernels/cuda/cuda_common.cuh"

namespace islkd::cuda {
const char* cublas_status_string(cublasStatus_t s);
}  // namespace islkd::cuda

#define ISLKD_CUBLAS_CHECK(call)                                                                               \
  do {                                                                                                         \
    cublasStatus_t islkd_st_ = (call);                                                                         \
    if (islkd_st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
      ::islkd::cuda::throw_cuda_error(#call, static_cast<int>(islkd_st_),                                      \
                                      ::islkd::cuda::cublas_status_string(islkd_st_), __FILE__, __LINE__);     \
  } while (0)

#define ISLKD_CUDNN_CHECK(call)                                                                                \
  do {                                                                                                         \
    cudnnStatus_t islkd_st_ = (call);                                                                          \
    if (islkd_st_ != CUDNN_STATUS_SUCCESS)                                                                     \
      ::islkd::cuda::throw_cuda_error(#call, static_cast<int>(islkd_st_), cudnnGetErrorString(islkd_st_),      \
                                      __FILE__, __LINE__);                                                     \
  } while (0)
