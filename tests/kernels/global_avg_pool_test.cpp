// global_avg_pool: CPU against a double reference, finite-difference gradient, boundary errors.
#include "engine/ops.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(GlobalAvgPool, ForwardMatchesReference) {
  struct P {
    int64_t N, C, H, W;
  };
  uint32_t seed = 1;
  for (P p : {P{1, 1, 1, 1}, P{2, 3, 31, 33}, P{128, 64, 8, 8}, P{3, 7, 1, 5}}) {
    auto x = test::random_vector(static_cast<size_t>(p.N * p.C * p.H * p.W), seed++);
    std::vector<float> ref;
    const int64_t HW = p.H * p.W;
    for (int64_t pl = 0; pl < p.N * p.C; ++pl) {
      double s = 0;
      for (int64_t i = 0; i < HW; ++i) s += x[static_cast<size_t>(pl * HW + i)];
      ref.push_back(float(s / double(HW)));
    }
    Tensor y = ops::global_avg_pool(Tensor::from_vector(x, {p.N, p.C, p.H, p.W}));
    EXPECT_EQ(y.shape(), (Shape{p.N, p.C}));
    EXPECT_TRUE(test::all_close(y, ref, 1e-6f, 1e-5f)) << p.N << "x" << p.C << "x" << p.H << "x" << p.W;
  }
}

TEST(GlobalAvgPool, GradientMatchesFiniteDifferences) {
  Tensor x = test::random_tensor({2, 3, 5, 4}, 3).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::global_avg_pool(in[0]); }, {x}, 1e-2f,
                               1e-3f, 1e-3f));
}

TEST(GlobalAvgPool, NonFourDimensionalInputNamesOpAndShape) {
  try {
    ops::global_avg_pool(Tensor::zeros({2, 3, 4}));
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("global_avg_pool"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 4]"), std::string::npos) << m;
  }
}
