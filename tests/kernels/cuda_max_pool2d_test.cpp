// CUDA max pooling (kernels/cuda/max_pool2d.cu) under the emulator against the CPU kernels: outputs, int32 argmax
// and the gathered backward, for windows with and without padding and overlap, odd sizes, NaN inputs.
#include <cmath>
#include <limits>
#include <random>

#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;
using test::pool;

namespace {

void check(const Pool2dShape& s, std::vector<float> x) {
  SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " H=" << s.H << " W=" << s.W << " k="
                                    << s.kernel << " s=" << s.stride << " p=" << s.pad);
  const size_t out = static_cast<size_t>(s.N * s.C * s.OH() * s.OW());
  std::vector<float> y(out), dx(x.size());
  std::vector<int32_t> am(out);
  cpu::max_pool2d_forward(s, x.data(), y.data(), am.data());
  const auto dy = test::random_vector(out, 99);
  cpu::max_pool2d_backward(s, dy.data(), am.data(), dx.data());

  DeviceVec<float> dxin(x), dyout(out), ddy(dy), ddx(x.size());
  DeviceVec<int32_t> dam(out);
  cuda::max_pool2d_forward(s, dxin.get(), dyout.get(), dam.get());
  cuda::max_pool2d_backward(s, ddy.get(), dam.get(), ddx.get());
  EXPECT_TRUE(all_close(dyout.host(), y, 0.0f, 0.0f));
  EXPECT_EQ(dam.host(), am);
  EXPECT_TRUE(all_close(ddx.host(), dx, 0.0f, 0.0f));  // same additions in the same order
}

}  // namespace

TEST(MaxPool2dCuda, MatchesCpuAtAwkwardSizes) {
  const Pool2dShape shapes[] = {pool(1, 1, 1, 1, 1, 1, 0), pool(1, 1, 2, 2, 2, 2, 0),  pool(2, 3, 31, 33, 2, 2, 0),
                                pool(1, 5, 33, 31, 3, 2, 1), pool(3, 2, 9, 7, 3, 1, 1), pool(1, 1, 32, 32, 3, 2, 1),
                                pool(2, 7, 5, 5, 5, 1, 2)};
  uint32_t seed = 5;
  for (const auto& s : shapes) check(s, test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), ++seed));
}

TEST(MaxPool2dCuda, TiesKeepFirstMaximumAsCpu) {
  // Few distinct values: many windows hold several maxima.
  const Pool2dShape s = pool(2, 3, 13, 11, 3, 2, 1);
  std::vector<float> x(static_cast<size_t>(s.N * s.C * s.H * s.W));
  std::mt19937 rng(3);
  for (auto& v : x) v = static_cast<float>(rng() % 3);
  check(s, x);
}

TEST(MaxPool2dCuda, NaNWinsAndPropagatesAsCpu) {
  const Pool2dShape s = pool(1, 2, 8, 9, 3, 2, 1);
  auto x = test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), 17);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  x[40] = std::numeric_limits<float>::quiet_NaN();
  x[100] = std::numeric_limits<float>::quiet_NaN();
  check(s, x);
}

TEST(MaxPool2dCuda, MatchesCpuAtRandomShapes) {
  std::mt19937 rng(77);
  for (int i = 0; i < 8; ++i) {
    const int64_t k = 1 + rng() % 4, st = 1 + rng() % 3, p = rng() % (k / 2 + 1);
    const int64_t H = k + rng() % 20, W = k + rng() % 20;
    const Pool2dShape s = pool(1 + rng() % 3, 1 + rng() % 5, H, W, k, st, p);
    check(s, test::random_vector(static_cast<size_t>(s.N * s.C * s.H * s.W), 200 + i));
  }
}
