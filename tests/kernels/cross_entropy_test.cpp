// cross_entropy: mean loss and per-row losses against a double log-sum-exp reference, stability with huge
// logits, the fused gradient against finite differences, label range and shape errors.
#include <cmath>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(CrossEntropy, MatchesLogSumExpReference) {
  uint32_t seed = 1;
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 31}, {33, 10}, {128, 100}}) {
    auto x = test::random_vector(static_cast<size_t>(rows * cols), seed++, -8.0f, 8.0f);
    std::vector<int32_t> labels;
    std::vector<float> ref_rows, ref_grad;
    double total = 0;
    for (int64_t r = 0; r < rows; ++r) {
      labels.push_back(static_cast<int32_t>((r * 7 + 3) % cols));
      double mx = -1e300, s = 0;
      for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, double(x[static_cast<size_t>(r * cols + c)]));
      for (int64_t c = 0; c < cols; ++c) s += std::exp(double(x[static_cast<size_t>(r * cols + c)]) - mx);
      double lse = mx + std::log(s);
      double l = lse - x[static_cast<size_t>(r * cols + labels.back())];
      ref_rows.push_back(float(l));
      total += l;
      for (int64_t c = 0; c < cols; ++c)
        ref_grad.push_back(float((std::exp(double(x[static_cast<size_t>(r * cols + c)]) - lse) -
                                  (c == labels.back() ? 1.0 : 0.0)) / double(rows)));
    }
    std::vector<float> row_loss(static_cast<size_t>(rows)), grad(x.size());
    float mean = cpu::cross_entropy_forward_backward(rows, cols, x.data(), labels.data(), row_loss.data(), grad.data());
    EXPECT_NEAR(mean, total / double(rows), 1e-5 * std::max(1.0, std::fabs(total / double(rows))));
    EXPECT_TRUE(test::all_close(row_loss, ref_rows, 1e-5f, 1e-5f));
    EXPECT_TRUE(test::all_close(grad, ref_grad, 1e-7f, 1e-5f));
    Tensor loss = ops::cross_entropy(Tensor::from_vector(x, {rows, cols}), Tensor::from_labels(labels));
    EXPECT_EQ(loss.item(), mean);
  }
}

TEST(CrossEntropy, HugeLogitsStayFinite) {
  Tensor loss = ops::cross_entropy(Tensor::from_vector({1e30f, 0.0f, -1e30f, 0.0f}, {2, 2}),
                                   Tensor::from_labels({1, 0}));
  EXPECT_TRUE(std::isfinite(loss.item()));
  EXPECT_NEAR(loss.item(), 1e30, 1e24);  // each row: its label logit is 1e30 below the row maximum
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  // Smooth in the logits: eps 1e-2 (truncation error ~1e-5), tolerance 1e-3.
  Tensor x = test::random_tensor({5, 7}, 2, -2.0f, 2.0f).set_requires_grad(true);
  Tensor labels = Tensor::from_labels({0, 6, 3, 3, 1});
  EXPECT_TRUE(test::grad_check([labels](const std::vector<Tensor>& in) { return ops::cross_entropy(in[0], labels); },
                               {x}, 1e-2f, 1e-3f, 1e-3f));
}

TEST(CrossEntropy, UpstreamGradientScalesTheResult) {
  Tensor x = test::random_tensor({3, 4}, 3).set_requires_grad(true);
  Tensor labels = Tensor::from_labels({0, 1, 2});
  ops::scale(ops::cross_entropy(x, labels), 2.5f).backward();
  std::vector<float> g2 = x.grad().to_vector();
  x.zero_grad();
  ops::cross_entropy(x, labels).backward();
  std::vector<float> g1 = x.grad().to_vector();
  for (float& v : g1) v *= 2.5f;
  EXPECT_TRUE(test::all_close(g2, g1, 1e-7f, 1e-6f));
}

TEST(CrossEntropy, LabelOutOfRangeNamesRowAndLabel) {
  try {
    ops::cross_entropy(Tensor::zeros({3, 4}), Tensor::from_labels({0, 1, 4}));
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cross_entropy"), std::string::npos) << m;
    EXPECT_NE(m.find("label 4"), std::string::npos) << m;
    EXPECT_NE(m.find("row 2"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::cross_entropy(Tensor::zeros({3, 4}), Tensor::from_labels({0, -1, 2})), Error);
}

TEST(CrossEntropy, ShapeMismatchNamesOpAndShapes) {
  try {
    ops::cross_entropy(Tensor::zeros({3, 4}), Tensor::from_labels({0, 1}));
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cross_entropy"), std::string::npos) << m;
    EXPECT_NE(m.find("[2]"), std::string::npos) << m;
    EXPECT_NE(m.find("[3]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::cross_entropy(Tensor::zeros({3, 4}), Tensor::zeros({3})), Error);  // float labels
}
