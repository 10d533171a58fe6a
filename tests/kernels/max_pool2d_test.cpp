// max_pool2d: CPU against a plain reference (padding = -inf, first maximum wins), gradient routing to the
// argmax checked with finite differences on tie-free inputs, boundary errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

std::vector<float> ref_max_pool(const Pool2dShape& s, const std::vector<float>& x) {
  std::vector<float> y;
  for (int64_t p = 0; p < s.N * s.C; ++p)
    for (int64_t oh = 0; oh < s.OH(); ++oh)
      for (int64_t ow = 0; ow < s.OW(); ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        for (int64_t r = 0; r < s.kernel; ++r)
          for (int64_t q = 0; q < s.kernel; ++q) {
            int64_t h = oh * s.stride - s.pad + r, w = ow * s.stride - s.pad + q;
            if (h >= 0 && h < s.H && w >= 0 && w < s.W) best = std::max(best, x[static_cast<size_t>((p * s.H + h) * s.W + w)]);
          }
        y.push_back(best);
      }
  return y;
}

// Distinct values 0.01 apart in random order: no two window entries within a finite-difference step.
std::vector<float> tie_free(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.01f * static_cast<float>(i) - 0.005f * static_cast<float>(n);
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  return v;
}

}  // namespace

TEST(MaxPool2d, ForwardMatchesReference) {
  struct P {
    int64_t N, C, H, W, k, stride, pad;
  };
  uint32_t seed = 1;
  for (P p : {P{1, 1, 1, 1, 1, 1, 0}, P{2, 3, 31, 33, 3, 2, 1}, P{1, 5, 32, 32, 2, 2, 0}, P{3, 2, 7, 9, 3, 1, 1},
              P{2, 4, 8, 8, 3, 2, 0}, P{1, 2, 5, 5, 5, 5, 2}}) {
    Pool2dShape s;
    s.N = p.N, s.C = p.C, s.H = p.H, s.W = p.W, s.kernel = p.k, s.stride = p.stride, s.pad = p.pad;
    auto x = test::random_vector(static_cast<size_t>(p.N * p.C * p.H * p.W), seed++);
    Tensor y = ops::max_pool2d(Tensor::from_vector(x, {p.N, p.C, p.H, p.W}), p.k, p.stride, p.pad);
    EXPECT_EQ(y.shape(), (Shape{p.N, p.C, s.OH(), s.OW()}));
    EXPECT_TRUE(test::all_close(y, ref_max_pool(s, x), 0, 0)) << p.H << "x" << p.W << " k" << p.k;
  }
}

TEST(MaxPool2d, AllNegativeWindowAtPaddingIgnoresPadding) {
  // Padding is -inf, not 0: a window of negative values over the border keeps its negative maximum.
  Tensor y = ops::max_pool2d(Tensor::full({1, 1, 2, 2}, -3.0f), 3, 1, 1);
  EXPECT_TRUE(test::all_close(y, std::vector<float>(4, -3.0f), 0, 0));
}

TEST(MaxPool2d, GradientGoesToTheMaximum) {
  // Overlapping windows (k3 s2 pad1): an input that is the maximum of two windows gets both gradients.
  Tensor x = Tensor::from_vector(tie_free(2 * 3 * 7 * 6, 5), {2, 3, 7, 6}).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::max_pool2d(in[0], 3, 2, 1); }, {x},
                               1e-3f, 1e-3f, 1e-3f, 1000));
}

TEST(MaxPool2d, BoundaryErrorsNameOpAndShapes) {
  try {
    ops::max_pool2d(Tensor::zeros({2, 3, 2, 2}), 5, 1, 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("max_pool2d"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 2, 2]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::max_pool2d(Tensor::zeros({2, 3, 8, 8}), 2, 2, 2), Error);  // pad > kernel/2
  EXPECT_THROW(ops::max_pool2d(Tensor::zeros({3, 8, 8}), 2, 2, 0), Error);     // not 4-d
}

TEST(MaxPool2d, NaNPropagatesAndTakesTheGradient) {
  Tensor x = Tensor::from_vector({1.0f, NAN, 5.0f, 2.0f}, {1, 1, 2, 2}).set_requires_grad(true);
  Tensor y = ops::max_pool2d(x, 2, 2, 0);
  EXPECT_TRUE(std::isnan(y.item()));
  test::weighted_sum(y, {1.0f}).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 1, 0, 0}));
}
