// CUDA global average pooling (kernels/cuda/global_avg_pool.cu) under the emulator against the CPU kernels:
// plane counts that are not multiples of the 8 planes per block, planes shorter and longer than a warp.
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

TEST(GlobalAvgPoolCuda, ForwardAndBackwardMatchCpuAtAwkwardSizes) {
  const int64_t sizes[][2] = {{1, 1}, {1, 31}, {31, 1}, {33, 33}, {9, 1000}, {1000, 16}, {17, 64}};
  uint32_t seed = 21;
  for (const auto& sz : sizes) {
    const int64_t NC = sz[0], HW = sz[1];
    SCOPED_TRACE(::testing::Message() << "NC=" << NC << " HW=" << HW);
    const auto x = test::random_vector(static_cast<size_t>(NC * HW), ++seed);
    const auto dy = test::random_vector(static_cast<size_t>(NC), ++seed);
    std::vector<float> y(static_cast<size_t>(NC)), dx(static_cast<size_t>(NC * HW));
    cpu::global_avg_pool_forward(NC, HW, x.data(), y.data());
    cpu::global_avg_pool_backward(NC, HW, dy.data(), dx.data());
    DeviceVec<float> dxin(x), dyout(y.size()), ddy(dy), ddx(dx.size());
    cuda::global_avg_pool_forward(NC, HW, dxin.get(), dyout.get());
    cuda::global_avg_pool_backward(NC, HW, ddy.get(), ddx.get());
    EXPECT_TRUE(all_close(dyout.host(), y, 1e-6f, 1e-5f));
    EXPECT_TRUE(all_close(ddx.host(), dx, 0.0f, 0.0f));
  }
}
