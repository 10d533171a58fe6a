// Winograd F(2x2, 3x3) (kernels/cpu/conv2d_winograd.cpp) against oneDNN's direct convolution (run on plain
// NCHW and converted to nChw8c), at awkward sizes: one image, odd and tiny maps (partial 2x2 tiles at the right
// and bottom edges), channel counts that are not powers of two, and enough tiles for several chunks with a
// partial last one; with bias, residual and ReLU.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

struct WinoCase {
  int64_t N, C, K, H, W;
};

class Winograd : public ::testing::TestWithParam<WinoCase> {};

TEST_P(Winograd, MatchesTheDirectConvolution) {
  const auto [N, C, K, H, W] = GetParam();
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = s.S = 3, s.stride = 1, s.pad = 1, s.groups = 1;
  // The reference is oneDNN's direct kernel on plain NCHW (conv2d_forward; the nChw8c entry points would take the
  // Winograd route themselves at these sizes), converted to nChw8c by index arithmetic.
  const std::vector<float> xp = test::random_vector(static_cast<size_t>(N * C * H * W), 1);
  const std::vector<float> x = test::nchw_to_nc8(xp, N, C, H * W);
  const std::vector<float> w = test::random_vector(static_cast<size_t>(K * C * 9), 2, -0.3f, 0.3f);
  const std::vector<float> bias = test::random_vector(static_cast<size_t>(K), 3);
  const std::vector<float> res = test::random_vector(static_cast<size_t>(N * K * H * W), 4);
  std::vector<float> direct(static_cast<size_t>(N * K * H * W));
  cpu::conv2d_forward(s, xp.data(), w.data(), bias.data(), direct.data());
  direct = test::nchw_to_nc8(direct, N, K, H * W);
  for (bool with_res : {false, true}) {
    for (bool relu : {false, true}) {
      std::vector<float> ref = direct;
      for (size_t i = 0; i < ref.size(); ++i) {
        if (with_res) ref[i] += res[i];
        if (relu) ref[i] = std::max(ref[i], 0.0f);
      }
      std::vector<float> y(ref.size(), -7.0f);
      cpu::conv2d_forward_winograd_nc8(s, x.data(), w.data(), bias.data(), with_res ? res.data() : nullptr, relu,
                                       y.data());
      EXPECT_TRUE(test::all_close(y, ref, 1e-4f, 1e-4f)) << "residual " << with_res << " relu " << relu;
    }
  }
  // Without bias.
  std::vector<float> d0(direct.size()), y0(direct.size());
  cpu::conv2d_forward(s, xp.data(), w.data(), nullptr, d0.data());
  d0 = test::nchw_to_nc8(d0, N, K, H * W);
  cpu::conv2d_forward_winograd_nc8(s, x.data(), w.data(), nullptr, nullptr, false, y0.data());
  EXPECT_TRUE(test::all_close(y0, d0, 1e-4f, 1e-4f));
}

INSTANTIATE_TEST_SUITE_P(AwkwardSizes, Winograd,
                         ::testing::Values(WinoCase{1, 8, 8, 1, 1}, WinoCase{1, 8, 16, 2, 2}, WinoCase{2, 16, 8, 5, 7},
                                           WinoCase{1, 8, 8, 31, 33}, WinoCase{3, 72, 72, 33, 33},
                                           WinoCase{2, 64, 128, 8, 8}, WinoCase{1, 128, 64, 3, 1}));


// The training entry points on nChw8c take the Winograd route for these shapes: forward and backward-data (the
// rotated, transposed filters) against oneDNN's plain-layout kernels.
TEST(WinogradTraining, ForwardAndBackwardDataMatchThePlainKernels) {
  for (const WinoCase& wc : {WinoCase{2, 64, 128, 7, 5}, WinoCase{1, 128, 64, 8, 8}}) {
    Conv2dShape s;
    s.N = wc.N, s.C = wc.C, s.H = wc.H, s.W = wc.W, s.K = wc.K, s.R = s.S = 3, s.stride = 1, s.pad = 1, s.groups = 1;
    Conv2dShape t = s;
    t.C = s.K, t.K = s.C;
    ASSERT_TRUE(cpu::winograd_applicable(s) && cpu::winograd_applicable(t));
    const int64_t HW = s.H * s.W;
    const std::vector<float> x = test::random_vector(static_cast<size_t>(s.N * s.C * HW), 1);
    const std::vector<float> dy = test::random_vector(static_cast<size_t>(s.N * s.K * HW), 2);
    const std::vector<float> w = test::random_vector(static_cast<size_t>(s.K * s.C * 9), 3, -0.3f, 0.3f);
    const std::vector<float> b = test::random_vector(static_cast<size_t>(s.K), 4);
    std::vector<float> y(dy.size()), dx(x.size()), y8(dy.size()), dx8(x.size());
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
    cpu::conv2d_forward_nc8(s, true, test::nchw_to_nc8(x, s.N, s.C, HW).data(), w.data(), b.data(), y8.data());
    cpu::conv2d_backward_data_nc8(s, test::nchw_to_nc8(dy, s.N, s.K, HW).data(), w.data(), true, dx8.data());
    EXPECT_TRUE(test::all_close(y8, test::nchw_to_nc8(y, s.N, s.K, HW), 1e-4f, 1e-4f)) << "forward C " << s.C;
    EXPECT_TRUE(test::all_close(dx8, test::nchw_to_nc8(dx, s.N, s.C, HW), 1e-4f, 1e-4f)) << "backward-data C " << s.C;
  }
}

TEST(WinogradShape, OnlyThreeByThreeStrideOnePadOneWithEnoughChannels) {
  Conv2dShape s;
  s.N = 2, s.C = 64, s.H = s.W = 8, s.K = 64, s.R = s.S = 3, s.stride = 1, s.pad = 1, s.groups = 1;
  EXPECT_TRUE(cpu::winograd_applicable(s));
  Conv2dShape t = s;
  t.stride = 2;
  EXPECT_FALSE(cpu::winograd_applicable(t));
  t = s, t.R = t.S = 1, t.pad = 0;
  EXPECT_FALSE(cpu::winograd_applicable(t));
  t = s, t.C = t.K = 32;
  EXPECT_FALSE(cpu::winograd_applicable(t));  // below kWinogradMinChannels: the direct kernel is faster
  t = s, t.C = 68;
  EXPECT_FALSE(cpu::winograd_applicable(t));
  std::vector<float> v(16);
  t = s, t.stride = 2;
  EXPECT_THROW(cpu::conv2d_forward_winograd_nc8(t, v.data(), v.data(), nullptr, nullptr, false, v.data()), Error);
}

}  // namespace
