// Winograd F(2x2, 3x3) (kernels/cpu/conv2d_winograd.cpp) against oneDNN's direct convolution (run on plain
// NCHW and converted to nChw8c / nChw16c), for both channel blocks at awkward sizes: one image, odd and tiny maps (partial 2x2 tiles at the right
// and bottom edges), channel counts that are not powers of two, and enough tiles for several chunks with a
// partial last one; with bias, residual and ReLU.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

struct WinoCase {
  int64_t N, C, K, H, W, B = 8;
};

class Winograd : public ::testing::TestWithParam<WinoCase> {};

TEST_P(Winograd, MatchesTheDirectConvolution) {
  const auto [N, C, K, H, W, B] = GetParam();
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = s.S = 3, s.stride = 1, s.pad = 1, s.groups = 1;
  // The reference is oneDNN's direct kernel on plain NCHW (conv2d_forward; the blocked entry points would take the
  // Winograd route themselves at these sizes), converted to nChw<B>c by index arithmetic.
  const std::vector<float> xp = test::random_vector(static_cast<size_t>(N * C * H * W), 1);
  const std::vector<float> x = test::nchw_to_blocked(xp, N, C, H * W, B);
  const std::vector<float> w = test::random_vector(static_cast<size_t>(K * C * 9), 2, -0.3f, 0.3f);
  const std::vector<float> bias = test::random_vector(static_cast<size_t>(K), 3);
  const std::vector<float> res = test::random_vector(static_cast<size_t>(N * K * H * W), 4);
  std::vector<float> direct(static_cast<size_t>(N * K * H * W));
  cpu::conv2d_forward(s, xp.data(), w.data(), bias.data(), direct.data());
  direct = test::nchw_to_blocked(direct, N, K, H * W, B);
  for (bool with_res : {false, true}) {
    for (bool relu : {false, true}) {
      std::vector<float> ref = direct;
      for (size_t i = 0; i < ref.size(); ++i) {
        if (with_res) ref[i] += res[i];
        if (relu) ref[i] = std::max(ref[i], 0.0f);
      }
      std::vector<float> y(ref.size(), -7.0f);
      cpu::conv2d_forward_winograd_blocked(s, B, x.data(), w.data(), bias.data(), with_res ? res.data() : nullptr,
                                           relu, y.data());
      EXPECT_TRUE(test::all_close(y, ref, 1e-4f, 1e-4f)) << "residual " << with_res << " relu " << relu;
    }
  }
  // Without bias.
  std::vector<float> d0(direct.size()), y0(direct.size());
  cpu::conv2d_forward(s, xp.data(), w.data(), nullptr, d0.data());
  d0 = test::nchw_to_blocked(d0, N, K, H * W, B);
  cpu::conv2d_forward_winograd_blocked(s, B, x.data(), w.data(), nullptr, nullptr, false, y0.data());
  EXPECT_TRUE(test::all_close(y0, d0, 1e-4f, 1e-4f));
}

INSTANTIATE_TEST_SUITE_P(AwkwardSizes, Winograd,
                         ::testing::Values(WinoCase{1, 8, 8, 1, 1}, WinoCase{1, 8, 16, 2, 2}, WinoCase{2, 16, 8, 5, 7},
                                           WinoCase{1, 8, 8, 31, 33}, WinoCase{3, 72, 72, 33, 33},
                                           WinoCase{2, 64, 128, 8, 8}, WinoCase{1, 128, 64, 3, 1},
                                           WinoCase{1, 16, 16, 1, 1, 16}, WinoCase{1, 16, 32, 2, 2, 16},
                                           WinoCase{2, 48, 16, 5, 7, 16}, WinoCase{1, 16, 16, 31, 33, 16},
                                           WinoCase{3, 80, 80, 33, 33, 16}, WinoCase{2, 64, 128, 8, 8, 16},
                                           WinoCase{1, 128, 64, 3, 1, 16}),
                         [](const ::testing::TestParamInfo<WinoCase>& i) {
                           const WinoCase& c = i.param;
                           return "N" + std::to_string(c.N) + "_C" + std::to_string(c.C) + "_K" + std::to_string(c.K) +
                                  "_" + std::to_string(c.H) + "x" + std::to_string(c.W) + "_nChw" +
                                  std::to_string(c.B) + "c";
                         });


// The training entry points on nChw<B>c (B = cpu::activation_block()) take the Winograd route for these shapes: forward and backward-data (the
// rotated, transposed filters) against oneDNN's plain-layout kernels.
TEST(WinogradTraining, ForwardAndBackwardDataMatchThePlainKernels) {
  for (const WinoCase& wc : {WinoCase{2, 64, 128, 7, 5}, WinoCase{1, 128, 64, 8, 8}}) {
    Conv2dShape s;
    s.N = wc.N, s.C = wc.C, s.H = wc.H, s.W = wc.W, s.K = wc.K, s.R = s.S = 3, s.stride = 1, s.pad = 1, s.groups = 1;
    Conv2dShape t = s;
    t.C = s.K, t.K = s.C;
    ASSERT_TRUE(cpu::winograd_applicable(s) && cpu::winograd_applicable(t));
    const int64_t HW = s.H * s.W, B = cpu::activation_block();
    const std::vector<float> x = test::random_vector(static_cast<size_t>(s.N * s.C * HW), 1);
    const std::vector<float> dy = test::random_vector(static_cast<size_t>(s.N * s.K * HW), 2);
    const std::vector<float> w = test::random_vector(static_cast<size_t>(s.K * s.C * 9), 3, -0.3f, 0.3f);
    const std::vector<float> b = test::random_vector(static_cast<size_t>(s.K), 4);
    std::vector<float> y(dy.size()), dx(x.size()), y8(dy.size()), dx8(x.size());
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
    cpu::conv2d_forward_cb(s, true, test::nchw_to_blocked(x, s.N, s.C, HW, B).data(), w.data(), b.data(), y8.data());
    cpu::conv2d_backward_data_cb(s, test::nchw_to_blocked(dy, s.N, s.K, HW, B).data(), w.data(), true, dx8.data());
    EXPECT_TRUE(test::all_close(y8, test::nchw_to_blocked(y, s.N, s.K, HW, B), 1e-4f, 1e-4f)) << "forward C " << s.C;
    EXPECT_TRUE(test::all_close(dx8, test::nchw_to_blocked(dx, s.N, s.C, HW, B), 1e-4f, 1e-4f))
        << "backward-data C " << s.C;
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
  t = s, t.C = 72;
  EXPECT_FALSE(cpu::winograd_applicable(t));  // not a multiple of 16: not every block fits
  std::vector<float> v(16);
  t = s, t.stride = 2;
  EXPECT_THROW(cpu::conv2d_forward_winograd_blocked(t, 8, v.data(), v.data(), nullptr, nullptr, false, v.data()),
               Error);
  try {
    cpu::conv2d_forward_winograd_blocked(s, 4, v.data(), v.data(), nullptr, nullptr, false, v.data());
    ADD_FAILURE() << "a channel block of 4 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nChw4c"), std::string::npos) << e.what();
  }
}

}  // namespace
