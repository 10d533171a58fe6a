// CUDA row softmax (kernels/cuda/softmax.cu) under the emulator against the CPU kernel: row counts that are not
// multiples of the 8 rows per block, rows shorter and longer than a warp, and logits of large magnitude.
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

namespace {
void check(int64_t rows, int64_t cols, float lo, float hi, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << rows << " x " << cols << " in [" << lo << ", " << hi << "]");
  const auto x = test::random_vector(static_cast<size_t>(rows * cols), seed, lo, hi);
  std::vector<float> y(x.size());
  cpu::softmax_forward(rows, cols, x.data(), y.data());
  DeviceVec<float> dx(x), dy(x.size());
  cuda::softmax_forward(rows, cols, dx.get(), dy.get());
  EXPECT_TRUE(all_close(dy.host(), y, 1e-7f, 1e-5f));
}
}  // namespace

TEST(SoftmaxCuda, MatchesCpuAtAwkwardSizes) {
  const int64_t sizes[][2] = {{1, 1}, {1, 31}, {31, 33}, {33, 10}, {3, 1000}, {9, 100}};
  uint32_t seed = 31;
  for (const auto& s : sizes) check(s[0], s[1], -5.0f, 5.0f, ++seed);
}

TEST(SoftmaxCuda, LargeLogitsStayFinite) {
  check(5, 77, -1e4f, 1e4f, 3);
  check(4, 40, 1e4f, 1e4f + 20.0f, 4);
}
