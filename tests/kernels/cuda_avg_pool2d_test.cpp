// CUDA average pooling (kernels/cuda/avg_pool2d.cu) under the emulator against the CPU kernels: forward and the
// gathered backward with count_include_pad semantics, for windows with and without padding and overlap.
#include <random>

#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;
using test::pool;

namespace {

void check(const Pool2dShape& s, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " H=" << s.H << " W=" << s.W << " k="
                                    << s.kernel << " s=" << s.stride << " p=" << s.pad);
  const size_t in = static_cast<size_t>(s.N * s.C * s.H * s.W), out = static_cast<size_t>(s.N * s.C * s.OH() * s.OW());
  const auto x = test::random_vector(in, seed), dy = test::random_vector(out, seed + 1);
  std::vector<float> y(out), dx(in);
  cpu::avg_pool2d_forward(s, x.data(), y.data());
  cpu::avg_pool2d_backward(s, dy.data(), dx.data());
  DeviceVec<float> dxin(x), dyout(out), ddy(dy), ddx(in);
  cuda::avg_pool2d_forward(s, dxin.get(), dyout.get());
  cuda::avg_pool2d_backward(s, ddy.get(), ddx.get());
  EXPECT_TRUE(all_close(dyout.host(), y, 0.0f, 0.0f));  // same additions in the same order, then one multiply
  // The backward's `sum += gp * inv` is contracted into an FMA by nvcc (PTX fma.rn.f32) but not by the CPU: each of
  // the <= k*k terms then skips one rounding of at most 2^-24 of |gp * inv|, and sum |gp * inv| <= max|dy| <= 1
  // here, so the results differ by at most ~6e-8; 1e-6 states that bound with room. The emulator matches exactly.
  const float fma_tol = cuda::is_emulated() ? 0.0f : 1e-6f;
  EXPECT_TRUE(all_close(ddx.host(), dx, fma_tol, 0.0f));
}

}  // namespace

TEST(AvgPool2dCuda, MatchesCpuAtAwkwardSizes) {
  const Pool2dShape shapes[] = {pool(1, 1, 1, 1, 1, 1, 0), pool(2, 3, 31, 33, 2, 2, 0), pool(1, 5, 33, 31, 3, 2, 1),
                                pool(3, 2, 9, 7, 3, 1, 1),  pool(1, 3, 8, 8, 8, 1, 0),   pool(2, 7, 5, 5, 5, 1, 2)};
  uint32_t seed = 11;
  for (const auto& s : shapes) check(s, seed += 3);
}

TEST(AvgPool2dCuda, MatchesCpuAtRandomShapes) {
  std::mt19937 rng(78);
  for (int i = 0; i < 8; ++i) {
    const int64_t k = 1 + rng() % 4, st = 1 + rng() % 3, p = rng() % (k / 2 + 1);
    const int64_t H = k + rng() % 20, W = k + rng() % 20;
    check(pool(1 + rng() % 3, 1 + rng() % 5, H, W, k, st, p), 300 + i);
  }
}
