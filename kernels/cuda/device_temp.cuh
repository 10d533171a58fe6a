// A launcher's device temporaries: a buffer from the caching allocator (cuda::device_malloc) that goes back to it
// when the launcher returns or throws.
#pragma once
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda::detail {

// A device buffer from cuda::device_malloc, returned to the allocator when the launcher returns or throws.
template <typename T>
class DeviceTemp {
 public:
  explicit DeviceTemp(int64_t n)
      : p_(n > 0 ? static_cast<T*>(device_malloc(static_cast<size_t>(n) * sizeof(T))) : nullptr) {}
  ~DeviceTemp() {
    if (p_) device_free(p_);
  }
  DeviceTemp(const DeviceTemp&) = delete;
  DeviceTemp& operator=(const DeviceTemp&) = delete;
  T* get() const { return p_; }

 private:
  T* p_;
};

}  // namespace islkd::cuda::detail
