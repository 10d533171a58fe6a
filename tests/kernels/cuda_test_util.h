// Helpers for the CUDA-vs-CPU kernel tests (tests/kernels/cuda_*_test.cpp): device buffers that go through the
// backend's allocator and copies like real code (under the emulator device memory is host memory, but a kernel
// that writes past its buffer still fails under ASan), and seeded shape/value generators.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"

// 1 in the emulated test binaries (the shim's counters, shim.h, can be read), 0 in islkd_tests_gpu, which builds
// the same cuda_*_test.cpp files against the real backend (tests/CMakeLists.txt).
#ifndef ISLKD_TEST_EMULATED
#define ISLKD_TEST_EMULATED 1
#endif

// For a check that only the emulator can make (hiding the device, the shim's choices): on a GPU the case skips.
#define ISLKD_SKIP_UNLESS_EMULATED(why)                                             \
  do {                                                                              \
    if (!::islkd::cuda::is_emulated()) GTEST_SKIP() << "emulator only: " << (why);  \
  } while (0)

namespace islkd::test {

// Makes cuda::device_available() true in an emulated build (the shim's device is hidden without
// ISLKD_EMULATED_CUDA=1, like a machine without a driver).
inline void enable_emulated_cuda() { setenv("ISLKD_EMULATED_CUDA", "1", 1); }
// A test binary that includes this header sees the emulated device from startup.
inline const bool kEmulatedCudaEnabledAtStartup = (enable_emulated_cuda(), true);

template <typename T>
class DeviceVec {
 public:
  explicit DeviceVec(const std::vector<T>& host) : n_(host.size()) {
    p_ = static_cast<T*>(cuda::device_malloc(bytes()));
    if (n_) cuda::memcpy_h2d(p_, host.data(), bytes());
  }
  // Filled with a byte pattern (NaN for floats) so outputs a kernel forgets to write show up.
  explicit DeviceVec(size_t n) : DeviceVec(std::vector<T>(n, poison())) {}
  ~DeviceVec() { cuda::device_free(p_); }
  DeviceVec(const DeviceVec&) = delete;
  DeviceVec& operator=(const DeviceVec&) = delete;

  T* get() const { return p_; }
  size_t size() const { return n_; }
  std::vector<T> host() const {
    std::vector<T> v(n_);
    if (n_) cuda::memcpy_d2h(v.data(), p_, bytes());
    return v;
  }

 private:
  static T poison() {
    if constexpr (std::is_floating_point_v<T>)
      return std::numeric_limits<T>::quiet_NaN();
    else
      return static_cast<T>(0x5A5A5A5A);
  }
  size_t bytes() const { return (n_ ? n_ : 1) * sizeof(T); }
  size_t n_;
  T* p_ = nullptr;
};

inline std::vector<int32_t> random_labels(size_t n, int32_t classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, classes - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A pooling shape in one call (N, C, H, W, kernel, stride, pad), for the CUDA pooling tests.
inline Pool2dShape pool(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p) {
  Pool2dShape sh;
  sh.N = N, sh.C = C, sh.H = H, sh.W = W, sh.kernel = k, sh.stride = s, sh.pad = p;
  return sh;
}

}  // namespace islkd::test
