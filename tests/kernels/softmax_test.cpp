// softmax: CPU against a double reference, stability with huge logits, no autograd, boundary errors.
#include <cmath>

#include "engine/ops.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(Softmax, MatchesReferenceRowWise) {
  uint32_t seed = 1;
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 31}, {33, 10}, {128, 100}, {3, 1000}}) {
    auto x = test::random_vector(static_cast<size_t>(rows * cols), seed++, -5.0f, 5.0f);
    std::vector<float> ref;
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += std::exp(double(x[static_cast<size_t>(r * cols + c)]));
      for (int64_t c = 0; c < cols; ++c) ref.push_back(float(std::exp(double(x[static_cast<size_t>(r * cols + c)])) / s));
    }
    EXPECT_TRUE(test::all_close(ops::softmax(Tensor::from_vector(x, {rows, cols})), ref, 1e-7f, 1e-5f))
        << rows << "x" << cols;
  }
}

TEST(Softmax, HugeLogitsStayFinite) {
  Tensor y = ops::softmax(Tensor::from_vector({1000.0f, 1000.0f, -1000.0f, 3e38f, 0.0f, -3e38f}, {2, 3}));
  EXPECT_TRUE(test::all_close(y, {0.5f, 0.5f, 0.0f, 1.0f, 0.0f, 0.0f}, 1e-7f, 0));
}

TEST(Softmax, OutputCarriesNoGradient) {
  Tensor x = test::random_tensor({2, 3}, 1).set_requires_grad(true);
  EXPECT_FALSE(ops::softmax(x).requires_grad());
}

TEST(Softmax, NonMatrixInputNamesOpAndShape) {
  try {
    ops::softmax(Tensor::zeros({2, 3, 4}));
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("softmax"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 4]"), std::string::npos) << m;
  }
}
