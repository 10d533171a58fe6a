// The CUDA shim's own interface: call counters, so that tests can check what the backend's host code asked of
// the runtime (e.g. "no cudaMalloc in the steady state"). The CUDA functions themselves have the toolkit's
// prototypes (cuda_runtime_api.h, cublas_v2.h, cudnn.h); this header needs none of them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace islkd_cuda_shim {

struct Stats {
  uint64_t mallocs = 0, frees = 0;            // cudaMalloc / cudaFree that succeeded (non-null)
  uint64_t host_mallocs = 0, host_frees = 0;  // cudaMallocHost / cudaFreeHost
  uint64_t live_allocations = 0;              // device allocations not yet freed
  uint64_t live_bytes = 0;
  uint64_t memcpys = 0, memsets = 0;
  uint64_t sgemms = 0;
  uint64_t conv_forward = 0, conv_backward_data = 0, conv_backward_filter = 0, conv_backward_bias = 0;
  uint64_t algorithm_queries = 0;  // cudnnGet*Algorithm_v7 calls (the backend caches them per shape)
  // The math type of the descriptor of the last convolution work call (cudnnMathType_t, -1: none yet) and the
  // math mode of the handle at the last cublasSgemm (cublasMath_t, -1: none yet): what a GPU would have computed in.
  int last_conv_math_type = -1, last_gemm_math_mode = -1;
};
Stats stats();

// The environment variable that makes the emulated device visible (cudaGetDeviceCount returns 1 when it is "1", N
// for "N" up to 16, else 0), so that an app built without nvcc picks the CPU under --device auto.
inline constexpr const char* kEnableVariable = "ISLKD_EMULATED_CUDA";

}  // namespace islkd_cuda_shim
