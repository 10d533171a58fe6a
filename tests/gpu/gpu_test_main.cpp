// main() of islkd_tests_gpu: the cuda_*_test.cpp files built against the real backend (nvcc, cuDNN, cuBLAS).
// Without a usable device every case skips with the reason (one line naming the failed query, e.g. error 35 of a
// driver older than the CUDA runtime), so `ctest -L gpu` passes on machines without a GPU; with one, it prints the
// device and driver once and runs the same checks as the emulated binaries.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "kernels/cuda/cuda_kernels.h"

namespace {

class DeviceEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    std::string why;
    // tests/CMakeLists.txt marks a case skipped when its output has this phrase (SKIP_REGULAR_EXPRESSION).
    if (!islkd::cuda::device_available(&why)) GTEST_SKIP() << "no usable CUDA device: " << why;
    int dev = 0, driver = 0, runtime = 0;
    cudaDeviceProp prop{};
    cudaGetDevice(&dev);
    cudaGetDeviceProperties(&prop, dev);
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    std::printf("islkd_tests_gpu: %s (sm_%d%d, %d SMs, %.1f GiB), driver API %d, runtime %d\n", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, driver,
                runtime);
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new DeviceEnvironment);
  return RUN_ALL_TESTS();
}
