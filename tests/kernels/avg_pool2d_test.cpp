// avg_pool2d: CPU against a plain reference with PyTorch's count_include_pad=true, finite-difference gradient,
// boundary errors.
#include "engine/ops.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(AvgPool2d, ForwardMatchesReferenceCountingPadding) {
  struct P {
    int64_t N, C, H, W, k, stride, pad;
  };
  uint32_t seed = 1;
  for (P p : {P{1, 1, 1, 1, 1, 1, 0}, P{2, 3, 31, 33, 3, 2, 1}, P{1, 5, 32, 32, 2, 2, 0}, P{3, 2, 7, 9, 3, 1, 1},
              P{2, 4, 8, 8, 4, 4, 0}, P{1, 2, 5, 5, 5, 5, 2}}) {
    auto x = test::random_vector(static_cast<size_t>(p.N * p.C * p.H * p.W), seed++);
    const int64_t OH = (p.H + 2 * p.pad - p.k) / p.stride + 1, OW = (p.W + 2 * p.pad - p.k) / p.stride + 1;
    std::vector<float> ref;
    for (int64_t pl = 0; pl < p.N * p.C; ++pl)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double s = 0;
          for (int64_t r = 0; r < p.k; ++r)
            for (int64_t q = 0; q < p.k; ++q) {
              int64_t h = oh * p.stride - p.pad + r, w = ow * p.stride - p.pad + q;
              if (h >= 0 && h < p.H && w >= 0 && w < p.W) s += x[static_cast<size_t>((pl * p.H + h) * p.W + w)];
            }
          ref.push_back(float(s / double(p.k * p.k)));  // padded positions count as zeros in the divisor
        }
    Tensor y = ops::avg_pool2d(Tensor::from_vector(x, {p.N, p.C, p.H, p.W}), p.k, p.stride, p.pad);
    EXPECT_EQ(y.shape(), (Shape{p.N, p.C, OH, OW}));
    EXPECT_TRUE(test::all_close(y, ref, 1e-6f, 1e-5f)) << p.H << "x" << p.W << " k" << p.k;
  }
}

TEST(AvgPool2d, GradientMatchesFiniteDifferences) {
  // Linear: eps 1e-2, tolerance 1e-3. Overlapping windows with padding (k3 s2 pad1).
  Tensor x = test::random_tensor({2, 3, 7, 6}, 3).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::avg_pool2d(in[0], 3, 2, 1); }, {x},
                               1e-2f, 1e-3f, 1e-3f, 1000));
}

TEST(AvgPool2d, BoundaryErrorsNameOpAndShapes) {
  try {
    ops::avg_pool2d(Tensor::zeros({2, 3, 2, 2}), 5, 1, 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("avg_pool2d"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 2, 2]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::avg_pool2d(Tensor::zeros({2, 3, 8, 8}), 2, 0, 0), Error);  // stride 0
}
