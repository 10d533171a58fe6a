// Layer modules: PyTorch parameter names, optional conv bias, Sequential's child names, BN's counter, seeded init.
#include "engine/nn.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "tests/common/test_util.h"

namespace islkd {
namespace {

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (auto& [n, t] : v) out.push_back(n);
  return out;
}

TEST(NnModules, SequentialNamesChildrenByIndexLikePyTorch) {
  nn::InitRng rng(0);
  nn::Sequential s;
  s.add(std::make_shared<nn::Conv2d>(3, 4, 3, 1, 1, 1, true, rng));
  s.add(std::make_shared<nn::BatchNorm2d>(4));
  s.add(std::make_shared<nn::ReLU>());
  s.add(std::make_shared<nn::Conv2d>(4, 4, 1, 1, 0, 1, false, rng));
  EXPECT_EQ(names_of(s.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "3.weight"}));
  EXPECT_EQ(names_of(s.named_buffers()), (std::vector<std::string>{"1.running_mean", "1.running_var"}));
  ASSERT_EQ(s.named_counters().size(), 1u);
  EXPECT_EQ(s.named_counters()[0].first, "1.num_batches_tracked");
  EXPECT_EQ(s.forward(test::random_tensor({2, 3, 8, 8}, 1)).shape(), (Shape{2, 4, 8, 8}));
}

TEST(NnModules, BatchNormCountsTrainingForwardsOnly) {
  nn::BatchNorm2d bn(3);
  Tensor x = test::random_tensor({4, 3, 5, 5}, 2);
  bn.forward(x);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked(), 2);
  bn.eval();
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked(), 2);
  EXPECT_EQ(bn.weight().to_vector(), std::vector<float>(3, 1.0f));
  EXPECT_EQ(bn.bias().to_vector(), std::vector<float>(3, 0.0f));
}

TEST(NnModules, BatchNormRunningStatsFollowMomentumWithUnbiasedVariance) {
  nn::BatchNorm2d bn(1);
  // One channel, values 0..7: mean 3.5, unbiased variance 6.
  std::vector<float> v(8);
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(i);
  bn.forward(Tensor::from_vector(v, {2, 1, 2, 2}));
  EXPECT_NEAR(bn.running_mean().to_vector()[0], 0.35f, 1e-6f);
  EXPECT_NEAR(bn.running_var().to_vector()[0], 0.9f * 1.0f + 0.1f * 6.0f, 1e-5f);
}

TEST(NnModules, LinearFlattensAndUsesPyTorchDefaultBounds) {
  nn::InitRng rng(3);
  nn::Linear fc(12, 5, true, rng);
  for (float w : fc.weight().to_vector()) ASSERT_LE(std::fabs(w), 1.0f / std::sqrt(12.0f));
  for (float b : fc.bias()->to_vector()) ASSERT_LE(std::fabs(b), 1.0f / std::sqrt(12.0f));
  EXPECT_EQ(fc.forward(test::random_tensor({2, 3, 2, 2}, 4)).shape(), (Shape{2, 5}));
  EXPECT_THROW(fc.forward(test::random_tensor({2, 13}, 4)), Error);
}

TEST(NnModules, ConvWithoutBiasHasNoBiasParameter) {
  nn::InitRng rng(0);
  nn::Conv2d conv(8, 8, 3, 2, 1, 8, false, rng);  // depthwise
  EXPECT_EQ(conv.bias(), nullptr);
  EXPECT_EQ(names_of(conv.named_parameters()), std::vector<std::string>{"weight"});
  EXPECT_EQ(conv.weight().shape(), (Shape{8, 1, 3, 3}));
  EXPECT_EQ(conv.forward(test::random_tensor({1, 8, 6, 6}, 5)).shape(), (Shape{1, 8, 3, 3}));
  EXPECT_THROW(nn::Conv2d(6, 8, 1, 1, 0, 4, false, rng), Error);
}

TEST(NnInit, SameSeedSameStreamAndMomentsAreRight) {
  nn::InitRng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(a.next_u64(), c.next_u64());
  nn::InitRng r(1);
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal(0.0, 2.0);
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(s2 / n), 2.0, 0.02);
  for (int i = 0; i < 1000; ++i) {
    const double u = r.uniform();
    ASSERT_TRUE(u >= 0.0 && u < 1.0);
  }
}

TEST(NnInit, KaimingFanOutUsesOutputChannelsTimesKernel) {
  nn::InitRng rng(0);
  Tensor w = Tensor::zeros({64, 32, 3, 3});
  EXPECT_EQ(nn::init::fan_out(w), 576);
  EXPECT_EQ(nn::init::fan_in(w), 288);
  nn::init::kaiming_normal_fan_out(w, rng);
  const std::vector<float> v = w.to_vector();
  double s2 = 0;
  for (float x : v) s2 += double(x) * x;
  EXPECT_NEAR(std::sqrt(s2 / v.size()), std::sqrt(2.0 / 576), 0.001);
}

}  // namespace
}  // namespace islkd
