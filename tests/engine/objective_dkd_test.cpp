// The `dkd` objective: its settings table (mdistiller's defaults), and that its loss and gradient w.r.t. the
// student's logits are those of the dkd_loss op (tested against PyTorch in tests/kernels/dkd_loss_test.cpp) with the
// warm-up factor of the Trainer's (0-based) epoch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/dkd.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

using namespace islkd;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(seed >> 40) / double(1ull << 24) * 6.0 - 3.0);
  }
  return Tensor::from_vector(v, shape);
}

double worst_relative(const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 1e-12, worst = 0.0;
  for (float w : want) scale = std::max(scale, std::fabs(static_cast<double>(w)));
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])) / scale);
  return worst;
}

}  // namespace

TEST(ObjectiveDkd, DefaultsAreMdistillersAndTheTableRoundTrips) {
  auto dkd = distill::make_objective("dkd");
  EXPECT_EQ(dkd->config(), (nlohmann::json{{"temperature", 4.0}, {"alpha", 1.0}, {"beta", 8.0}, {"ce_weight", 1.0},
                                           {"warmup_epochs", 20}}));
  EXPECT_TRUE(dkd->needs().teacher_logits);
  EXPECT_FALSE(dkd->needs().needs_teacher_features());
  EXPECT_TRUE(dkd->parameters().empty());
  auto other = distill::make_objective("dkd", {{"beta", 2.0}, {"warmup_epochs", 0}});
  EXPECT_EQ(distill::make_objective("dkd", other->config())->config(), other->config());
  EXPECT_THROW(distill::make_objective("dkd", {{"temperature", 0.0}}), Error);
  EXPECT_THROW(distill::make_objective("dkd", {{"beta", -1.0}}), Error);
  EXPECT_THROW(distill::make_objective("dkd", {{"warmup_epochs", 2.5}}), Error);
  EXPECT_THROW(distill::make_objective("dkd", {{"gamma", 1.0}}), Error);
}

// Epochs 0 and 4 are inside the 20-epoch warm-up (factors 1/20 and 5/20), epoch 30 after it.
TEST(ObjectiveDkd, LossAndGradientAreTheDkdLossOpsWithTheEpochsWarmup) {
  const Tensor labels = Tensor::from_labels({0, 3, 2, 1, 4, 6}, Device::CPU);
  const Tensor teacher = random_tensor({6, 7}, 2);
  double worst = 0.0;
  for (int64_t epoch : {0, 4, 30}) {
    Tensor s1 = random_tensor({6, 7}, 1), s2 = random_tensor({6, 7}, 1);
    s1.set_requires_grad(true), s2.set_requires_grad(true);
    ops::DKDLossParams p;  // mdistiller's defaults
    p.warmup = distill::dkd_warmup_factor(epoch + 1, 20);
    Tensor ref = ops::dkd_loss(s1, teacher, labels, p).loss;
    ref.backward();
    distill::ObjectiveInputs in;
    in.student_logits = s2, in.teacher_logits = teacher, in.labels = labels, in.epoch = epoch;
    Tensor got = distill::make_objective("dkd")->loss(in);
    got.backward();
    EXPECT_NEAR(got.item(), ref.item(), 1e-4 * std::fabs(ref.item())) << "epoch " << epoch;
    worst = std::max({worst, worst_relative({got.item()}, {ref.item()}),
                      worst_relative(s2.grad().to_vector(), s1.grad().to_vector())});
  }
  EXPECT_LE(worst, 1e-4);
  std::printf("dkd objective: worst relative error vs dkd_loss %.3g\n", worst);
  // The warm-up is visible: epoch 0's decoupled terms weigh 1/20 of epoch 30's.
  EXPECT_FLOAT_EQ(distill::dkd_warmup_factor(1, 20), 0.05f);
}
