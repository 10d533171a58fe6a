// Feature-distillation ops on the CPU (kernels/cpu/feature_losses.cpp through ops::at_loss, ops::mse_loss, and
// distill::ConvReg / at_loss_sum): against plain double references at awkward sizes, finite differences, the
// degenerate all-zero map, shape errors. PyTorch's numbers: distill_losses_torch_test.cpp; CUDA:
// cuda_feature_losses_test.cpp.
#include <cmath>

#include "engine/distill/feature_losses.h"
#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

// at(f) per sample from the definition, in double.
std::vector<double> ref_at(const std::vector<float>& f, int64_t N, int64_t C, int64_t HW) {
  std::vector<double> a(static_cast<size_t>(N * HW), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    double norm = 0;
    for (int64_t k = 0; k < HW; ++k) {
      double u = 0;
      for (int64_t c = 0; c < C; ++c) u += double(f[(n * C + c) * HW + k]) * f[(n * C + c) * HW + k];
      a[n * HW + k] = u / C;
      norm += (u / C) * (u / C);
    }
    norm = std::max(std::sqrt(norm), 1e-12);
    for (int64_t k = 0; k < HW; ++k) a[n * HW + k] /= norm;
  }
  return a;
}

}  // namespace

TEST(ATLoss, MatchesDefinitionAtAwkwardSizes) {
  uint32_t seed = 3;
  for (int64_t N : {1, 3})
    for (auto [Cs, Ct] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {31, 33}, {16, 64}})
      for (auto [H, W] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 7}, {32, 32}, {25, 40}}) {
        const auto s = test::random_vector(N * Cs * H * W, ++seed, -2, 2);
        const auto t = test::random_vector(N * Ct * H * W, ++seed, -2, 2);
        const auto as = ref_at(s, N, Cs, H * W), at = ref_at(t, N, Ct, H * W);
        double ref = 0;
        for (size_t i = 0; i < as.size(); ++i) ref += (as[i] - at[i]) * (as[i] - at[i]);
        ref /= static_cast<double>(as.size());
        const float got = ops::at_loss(Tensor::from_vector(s, {N, Cs, H, W}), Tensor::from_vector(t, {N, Ct, H, W}))
                              .item();
        EXPECT_NEAR(got, ref, 1e-7 + 1e-5 * ref) << N << " " << Cs << "/" << Ct << " " << H << "x" << W;
      }
}

TEST(ATLoss, GradientMatchesFiniteDifferences) {
  for (auto shape : std::vector<Shape>{{2, 3, 4, 5}, {1, 33, 3, 3}, {3, 1, 1, 31}}) {
    Shape ts = shape;
    ts[1] = 7;
    Tensor s = test::random_tensor(shape, 21, -1.5f, 1.5f).set_requires_grad(true);
    Tensor t = test::random_tensor(ts, 22, -1.5f, 1.5f);
    // Float32 central differences resolve the loss to ~|L| * 6e-8 / (2 eps) ~ 2e-7 here; atol is a few times that.
    EXPECT_TRUE(test::grad_check([&](const std::vector<Tensor>& in) { return ops::at_loss(in[0], t); }, {s}, 1e-2f,
                                 5e-7f, 1e-2f))
        << shape_str(shape);
  }
}

TEST(ATLoss, AllZeroStudentMapIsFiniteAndTeacherIsConstant) {
  Tensor s = Tensor::zeros({2, 3, 4, 4}).set_requires_grad(true);
  Tensor t = test::random_tensor({2, 5, 4, 4}, 1).set_requires_grad(true);
  Tensor l = ops::at_loss(s, t);
  l.backward();
  EXPECT_NEAR(l.item(), 1.0f / 16.0f, 1e-6f);  // at(s) = 0, |at(t)| = 1 per sample: mean of at(t)^2 = 1/HW
  for (float v : s.grad().to_vector()) EXPECT_EQ(v, 0.0f);
  EXPECT_FALSE(t.grad().defined());
}

TEST(ATLoss, ShapeErrorsNameTheOpAndShapes) {
  try {
    ops::at_loss(Tensor::zeros({2, 3, 8, 8}), Tensor::zeros({2, 3, 4, 4}));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("at_loss"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 8, 8]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 4, 4]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::at_loss(Tensor::zeros({2, 3, 8}), Tensor::zeros({2, 3, 8})), Error);
  EXPECT_THROW(distill::at_loss_sum({Tensor::zeros({2, 3, 6, 6})}, {Tensor::zeros({2, 3, 4, 4})}), Error);
}

TEST(ATLoss, SumOverPairsPoolsTheLargerMapAndUsesRepDistillersBeta) {
  Tensor s0 = test::random_tensor({2, 4, 8, 8}, 1), t0 = test::random_tensor({2, 6, 4, 4}, 2);
  Tensor s1 = test::random_tensor({2, 4, 4, 4}, 3), t1 = test::random_tensor({2, 6, 4, 4}, 4);
  const float sum = distill::at_loss_sum({s0, s1}, {t0, t1}).item();
  const float expect = 1000.0f * (ops::at_loss(ops::avg_pool2d(s0, 2, 2), t0).item() + ops::at_loss(s1, t1).item());
  EXPECT_NEAR(sum, expect, 1e-6f * expect);
  auto m = models::create_model("resnet8", {10, 3, 0});
  EXPECT_EQ(distill::at_feature_names(*m), (std::vector<std::string>{"feat1", "feat2", "feat3"}));
}

TEST(MSELoss, MatchesDefinitionAtAwkwardSizesAndThreadCounts) {
  for (int64_t n : {1, 31, 33, 1000, 100003}) {
    const auto a = test::random_vector(n, 5, -3, 3), b = test::random_vector(n, 6, -3, 3);
    double ref = 0;
    for (int64_t i = 0; i < n; ++i) ref += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    ref /= static_cast<double>(n);
    std::vector<float> d1(n), d2(n);
    const int saved = cpu::num_threads();
    cpu::set_num_threads(1);
    const float one = cpu::mse_loss_forward_backward(n, a.data(), b.data(), d1.data());
    cpu::set_num_threads(2);
    const float two = cpu::mse_loss_forward_backward(n, a.data(), b.data(), d2.data());
    cpu::set_num_threads(saved);
    EXPECT_NEAR(one, ref, 1e-6 * ref) << n;
    EXPECT_EQ(one, two) << n;
    EXPECT_EQ(d1, d2) << n;
    for (int64_t i = 0; i < n; i += std::max<int64_t>(1, n / 50))
      EXPECT_NEAR(d1[i], 2.0 * (double(a[i]) - b[i]) / n, 1e-6 * std::fabs(2.0 * (a[i] - b[i]) / n) + 1e-12);
  }
}

TEST(MSELoss, GradientsOfBothInputsMatchFiniteDifferences) {
  Tensor a = test::random_tensor({3, 5, 2, 2}, 7).set_requires_grad(true);
  Tensor b = test::random_tensor({3, 5, 2, 2}, 8).set_requires_grad(true);
  EXPECT_TRUE(test::grad_check([](const std::vector<Tensor>& in) { return ops::mse_loss(in[0], in[1]); }, {a, b},
                               1e-2f, 1e-4f, 2e-3f));
  EXPECT_THROW(ops::mse_loss(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})), Error);
}

TEST(FitNetHint, RegressorShapesFollowConvReg) {
  // 2x larger student (3x3 stride 2), larger by 2 (3x3 conv), equal (1x1), half (RepDistiller's transposed conv).
  for (auto [s, t, k] : std::vector<std::tuple<Shape, Shape, int64_t>>{
           {{2, 8, 16, 16}, {2, 32, 8, 8}, 3}, {{2, 8, 6, 6}, {2, 12, 4, 4}, 3}, {{2, 8, 8, 8}, {2, 16, 8, 8}, 1}}) {
    distill::ConvReg reg(s, t, 1);
    std::vector<std::string> names;
    for (auto& [n, p] : reg.named_parameters()) names.push_back(n);
    EXPECT_EQ(names, (std::vector<std::string>{"conv.weight", "conv.bias", "bn.weight", "bn.bias"}));
    EXPECT_EQ(reg.named_parameters()[0].second.shape(), (Shape{t[1], s[1], k, k}));
    EXPECT_EQ(reg(test::random_tensor(s, 2)).shape(), t);
  }
  EXPECT_THROW(distill::ConvReg({2, 8, 4, 4}, {2, 16, 8, 8}, 1), Error);
}

TEST(FitNetHint, GradientReachesStudentFeatureAndRegressor) {
  Tensor s = test::random_tensor({2, 3, 6, 6}, 6).set_requires_grad(true);
  Tensor t = test::random_tensor({2, 4, 3, 3}, 7, 0.0f, 1.0f);
  // Without the final ReLU (use_relu = false), whose kinks central differences cannot straddle; BN in training
  // mode: each perturbed input's loss uses its own batch statistics, as in a training step.
  distill::ConvReg smooth({2, 3, 6, 6}, {2, 4, 3, 3}, 5, false);
  EXPECT_TRUE(test::grad_check(
      [&](const std::vector<Tensor>& in) { return distill::fitnet_hint_loss(smooth, in[0], t); }, {s}, 1e-2f, 1e-4f,
      5e-3f));
  distill::ConvReg reg({2, 3, 6, 6}, {2, 4, 3, 3}, 5);
  distill::fitnet_hint_loss(reg, s, t).backward();
  for (auto& [n, p] : reg.named_parameters()) EXPECT_TRUE(p.grad().defined()) << n;
}
