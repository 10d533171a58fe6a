// Shared by every kernels/cuda/*.cu: error checks that carry the call, file and line; the compute stream;
// launch-geometry helpers. Builds under nvcc and under the emulator (cuda_emu.h force-included first).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "kernels/common/error.h"
#include "kernels/emu/launch.h"

namespace islkd::cuda {

// The stream every op runs on (created on first use by kernels/cuda/device.cpp).
cudaStream_t compute_stream();
// Throws islkd::Error("<call> failed: <cuda error string> at file:line").
[[noreturn]] void throw_cuda_error(const char* call, int code, const char* message, const char* file, int line);

// Counters (cuda::counters()): bumped by the launch check below and at each cuDNN / cuBLAS work call.
namespace detail {
void count_launch();
void count_cudnn_call();
void count_cublas_call();
void count_host_sync();  // a host wait outside device.cpp (an event the host had to wait for)
}  // namespace detail

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid for a grid-stride elementwise loop: enough blocks to fill the device, never more than needed.
inline unsigned elementwise_blocks(int64_t n, int threads) {
  int64_t b = ceil_div(n, threads);
  if (b < 1) b = 1;
  if (b > 65535) b = 65535;
  return static_cast<unsigned>(b);
}

}  // namespace islkd::cuda

#define ISLKD_CUDA_CHECK(call)                                                                          \
  do {                                                                                                  \
    cudaError_t islkd_err_ = (call);                                                                    \
    if (islkd_err_ != cudaSuccess)                                                                      \
      ::islkd::cuda::throw_cuda_error(#call, static_cast<int>(islkd_err_), cudaGetErrorString(islkd_err_), \
                                      __FILE__, __LINE__);                                              \
  } while (0)

// After ISLKD_LAUNCH: reports a bad launch configuration with the kernel's file and line.
// Follows every launch exactly once, so it also counts the launches.
#define ISLKD_CUDA_CHECK_LAUNCH()             \
  do {                                        \
    ::islkd::cuda::detail::count_launch();    \
    ISLKD_CUDA_CHECK(cudaGetLastError());     \
  } while (0)
