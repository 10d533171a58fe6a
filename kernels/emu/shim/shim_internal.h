// Shared between the shim's translation units: the counters and the device-pointer registry (cuBLAS and cuDNN
// check that the pointers they are given are device memory, as the real libraries would fault otherwise).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "kernels/emu/shim/shim.h"

namespace islkd_cuda_shim::detail {

struct Counters {
  std::atomic<uint64_t> mallocs{0}, frees{0}, host_mallocs{0}, host_frees{0}, live_allocations{0}, live_bytes{0},
      memcpys{0}, memsets{0}, sgemms{0}, conv_forward{0}, conv_backward_data{0}, conv_backward_filter{0},
      conv_backward_bias{0}, algorithm_queries{0};
  std::atomic<int> last_conv_math_type{-1}, last_gemm_math_mode{-1};
};
Counters& counters();

// True when [p, p + bytes) lies inside one live cudaMalloc allocation.
bool is_device_range(const void* p, size_t bytes);
// One line on stderr explaining why a call returned an error (the error code alone says little).
void explain(const char* call, const char* why);

}  // namespace islkd_cuda_shim::detail
