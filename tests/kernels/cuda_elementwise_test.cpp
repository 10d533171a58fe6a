// Elementwise CUDA kernels (fill, copy, add, accumulate, scale, relu, sum_rows) under the emulator against the CPU
// backend, at sizes that are not multiples of the block (1, 31, 33, 1000, 100003).
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::DeviceVec;

namespace {
const int64_t kSizes[] = {1, 31, 33, 1000, 100003};
}

TEST(CudaElementwise, FillAndCopyMatchCpu) {
  for (int64_t n : kSizes) {
    const size_t un = static_cast<size_t>(n);
    DeviceVec<float> y(un), z(un);
    cuda::fill(y.get(), 2.5f, n);
    std::vector<float> ref(un);
    cpu::fill(ref.data(), 2.5f, n);
    EXPECT_TRUE(test::all_close(y.host(), ref, 0, 0)) << "fill n=" << n;
    const std::vector<float> x = test::random_vector(un, 11);
    DeviceVec<float> dx(x);
    cuda::copy(dx.get(), z.get(), n);
    EXPECT_TRUE(test::all_close(z.host(), x, 0, 0)) << "copy n=" << n;
  }
}

TEST(CudaElementwise, AddAccumulateScaleMatchCpu) {
  for (int64_t n : kSizes) {
    const size_t un = static_cast<size_t>(n);
    const std::vector<float> a = test::random_vector(un, 1), b = test::random_vector(un, 2);
    DeviceVec<float> da(a), db(b), dy(un);
    std::vector<float> ref(un);

    cuda::add(da.get(), db.get(), dy.get(), n);
    cpu::add(a.data(), b.data(), ref.data(), n);
    EXPECT_TRUE(test::all_close(dy.host(), ref, 0, 0)) << "add n=" << n;

    cuda::scale(da.get(), -0.75f, dy.get(), n);
    cpu::scale(a.data(), -0.75f, ref.data(), n);
    EXPECT_TRUE(test::all_close(dy.host(), ref, 0, 0)) << "scale n=" << n;

    DeviceVec<float> factor(std::vector<float>{-0.75f});  // same product as scale, the factor read on the device
    cuda::scale_by_device_scalar(da.get(), factor.get(), dy.get(), n);
    EXPECT_TRUE(test::all_close(dy.host(), ref, 0, 0)) << "scale_by_device_scalar n=" << n;

    std::vector<float> acc = b;
    cuda::accumulate(da.get(), db.get(), n);
    cpu::accumulate(a.data(), acc.data(), n);
    EXPECT_TRUE(test::all_close(db.host(), acc, 0, 0)) << "accumulate n=" << n;
  }
}

TEST(CudaElementwise, AddInPlaceAliasesAnInput) {
  const std::vector<float> a = test::random_vector(1000, 3), b = test::random_vector(1000, 4);
  DeviceVec<float> da(a), db(b);
  cuda::add(da.get(), db.get(), db.get(), 1000);
  std::vector<float> ref(1000);
  cpu::add(a.data(), b.data(), ref.data(), 1000);
  EXPECT_TRUE(test::all_close(db.host(), ref, 0, 0));
}

TEST(CudaElementwise, ReluForwardBackwardMatchCpu) {
  for (int64_t n : kSizes) {
    const size_t un = static_cast<size_t>(n);
    std::vector<float> x = test::random_vector(un, 5);
    if (n > 2) x[1] = std::nanf(""), x[2] = 0.0f;  // NaN and the kink map to 0, as on the CPU
    const std::vector<float> dy = test::random_vector(un, 6);
    DeviceVec<float> dx_in(x), ddy(dy), dyv(un), ddx(un);
    std::vector<float> y(un), dx(un);
    cuda::relu_forward(dx_in.get(), dyv.get(), n);
    cpu::relu_forward(x.data(), y.data(), n);
    EXPECT_TRUE(test::all_close(dyv.host(), y, 0, 0)) << "relu_forward n=" << n;
    cuda::relu_backward(dyv.get(), ddy.get(), ddx.get(), n);
    cpu::relu_backward(y.data(), dy.data(), dx.data(), n);
    EXPECT_TRUE(test::all_close(ddx.host(), dx, 0, 0)) << "relu_backward n=" << n;
  }
}

TEST(CudaElementwise, SumRowsMatchesCpuAtAwkwardShapes) {
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {31, 33}, {33, 31}, {1000, 10}, {4, 1000}, {100003, 1}, {7, 65}};
  for (auto [rows, cols] : shapes) {
    const std::vector<float> x = test::random_vector(static_cast<size_t>(rows * cols), 9);
    DeviceVec<float> dx(x), dy(static_cast<size_t>(cols));
    std::vector<float> ref(static_cast<size_t>(cols));
    cuda::sum_rows(dx.get(), rows, cols, dy.get());
    cpu::sum_rows(x.data(), rows, cols, ref.data());
    // Different summation orders: relative tolerance grows with the number of rows summed.
    EXPECT_TRUE(test::all_close(dy.host(), ref, 1e-5f * static_cast<float>(rows), 1e-5f))
        << "rows=" << rows << " cols=" << cols;
  }
}

TEST(CudaElementwise, ZeroSizesLaunchNothing) {
  const auto before = cuda::allocator_in_use_bytes();
  cuda::fill(nullptr, 1.0f, 0);
  cuda::copy(nullptr, nullptr, 0);
  cuda::add(nullptr, nullptr, nullptr, 0);
  cuda::relu_forward(nullptr, nullptr, 0);
  cuda::sum_rows(nullptr, 5, 0, nullptr);
  EXPECT_EQ(cuda::allocator_in_use_bytes(), before);
}
