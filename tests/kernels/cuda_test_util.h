// Helpers for tests of the CUDA backend under the emulator: a device array filled from / read back to host
// vectors, and the switch that makes the emulated device visible (ISLKD_EMULATED_CUDA=1).
#pragma once
#include <cstdlib>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"

namespace islkd::test {

// Makes cuda::device_available() true in an emulated build (call at the start of a test that needs it).
inline void enable_emulated_cuda() { setenv("ISLKD_EMULATED_CUDA", "1", 1); }

// Device memory holding a copy of a host vector (or n uninitialised elements); freed on destruction.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : n_(host.size()) {
    p_ = static_cast<T*>(cuda::device_malloc(n_ * sizeof(T)));
    cuda::memcpy_h2d(p_, host.data(), n_ * sizeof(T));
  }
  explicit DeviceArray(size_t n) : n_(n) { p_ = static_cast<T*>(cuda::device_malloc(n_ * sizeof(T))); }
  ~DeviceArray() { cuda::device_free(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return p_; }
  std::vector<T> host() const {
    std::vector<T> v(n_);
    cuda::memcpy_d2h(v.data(), p_, n_ * sizeof(T));
    return v;
  }

 private:
  size_t n_;
  T* p_ = nullptr;
};

}  // namespace islkd::test
