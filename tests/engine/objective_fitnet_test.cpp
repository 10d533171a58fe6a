// The `fitnet` objective: RepDistiller's defaults (CE weight 1, beta 100, hint layer 2), the regressor it builds at
// bind (its trainable parameters, objective.fitnet.*), and that its loss and gradients w.r.t. the student's logits,
// its hint feature and the regressor are CE + beta * fitnet_hint_loss through a ConvReg of the same seed (tested
// against PyTorch in tests/kernels/feature_losses_test.cpp and the DistillLossesTorch tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/feature_losses.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"
#include "models/registry.h"

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

std::shared_ptr<Module> model(const std::string& name, uint64_t seed) {
  models::ModelConfig c;
  c.num_classes = 5, c.in_channels = 1, c.seed = seed;
  return models::create_model(name, c);
}

}  // namespace

TEST(ObjectiveFitnet, DefaultsAreRepDistillersAndBindBuildsTheRegressor) {
  auto fitnet = distill::make_objective("fitnet");
  EXPECT_EQ(fitnet->config(), (nlohmann::json{{"beta", 100.0}, {"ce_weight", 1.0}, {"hint_layer", 2}}));
  EXPECT_EQ(fitnet->needs().student_features, std::vector<std::string>{"feat2"});
  EXPECT_EQ(fitnet->needs().teacher_features, std::vector<std::string>{"feat2"});
  EXPECT_TRUE(fitnet->parameters().empty());  // until bind
  EXPECT_EQ(distill::make_objective("fitnet", fitnet->config())->config(), fitnet->config());
  EXPECT_THROW(distill::make_objective("fitnet", {{"hint_layer", -1}}), Error);
  EXPECT_THROW(distill::make_objective("fitnet", {{"alpha", 1.0}}), Error);
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  fitnet->bind({student.get(), teacher.get(), {1, 16, 16}, 7});
  std::vector<std::string> names;
  for (const auto& [n, t] : fitnet->parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"fitnet.conv.weight", "fitnet.conv.bias", "fitnet.bn.weight",
                                             "fitnet.bn.bias"}));
  EXPECT_EQ(fitnet->parameters()[0].second.shape(), (Shape{128, 32, 1, 1}));  // resnet8's 32 -> resnet8x4's 128
}

TEST(ObjectiveFitnet, LossAndGradientsAreCePlusBetaTimesTheHintThroughTheSameRegressor) {
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  auto fitnet = distill::make_objective("fitnet");
  const uint64_t seed = 7;
  fitnet->bind({student.get(), teacher.get(), {1, 16, 16}, seed});
  const Shape s_shape = {4, 32, 8, 8}, t_shape = {4, 128, 8, 8};
  distill::ConvReg reg(s_shape, t_shape, seed, true);
  const Tensor labels = Tensor::from_labels({0, 3, 2, 4}, Device::CPU);
  Tensor l1 = random_tensor({4, 5}, 1), l2 = random_tensor({4, 5}, 1);
  Tensor f1 = random_tensor(s_shape, 3), f2 = random_tensor(s_shape, 3);
  l1.set_requires_grad(true), l2.set_requires_grad(true), f1.set_requires_grad(true), f2.set_requires_grad(true);
  const Tensor t = random_tensor(t_shape, 4);
  Tensor ref = ops::add(ops::cross_entropy(l1, labels),
                        ops::scale(distill::fitnet_hint_loss(reg, f1, t), distill::kFitNetBeta));
  ref.backward();
  distill::ObjectiveInputs in;
  in.student_logits = l2, in.labels = labels;
  in.student_features["feat2"] = f2;
  in.teacher_features["feat2"] = t;
  Tensor got = fitnet->loss(in);
  got.backward();
  double worst = worst_relative({got.item()}, {ref.item()});
  worst = std::max(worst, worst_relative(l2.grad().to_vector(), l1.grad().to_vector()));
  worst = std::max(worst, worst_relative(f2.grad().to_vector(), f1.grad().to_vector()));
  const auto mine = fitnet->parameters();
  const auto theirs = reg.named_parameters();
  ASSERT_EQ(mine.size(), theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    EXPECT_EQ(mine[i].second.to_vector(), theirs[i].second.to_vector()) << theirs[i].first << ": same init";
    ASSERT_TRUE(mine[i].second.grad().defined()) << mine[i].first;
    worst = std::max(worst, worst_relative(mine[i].second.grad().to_vector(), theirs[i].second.grad().to_vector()));
  }
  EXPECT_LE(worst, 1e-4);
  std::printf("fitnet objective: loss %.6f, worst relative error vs CE + 100 * hint %.3g\n", got.item(), worst);
}
