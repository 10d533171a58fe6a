// The `at` objective: RepDistiller's defaults (CE weight 1, beta 1000, no KD term), the stage features it asks for
// after bind (feat[1:-1] of each model), and that its loss and gradients w.r.t. the student's logits and features
// are CE + beta * at_loss_sum (tested against PyTorch in tests/kernels/feature_losses_test.cpp and the
// DistillLossesTorch tests).
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

TEST(ObjectiveAt, DefaultsAreRepDistillersAndItAsksForTheStageFeaturesAfterBind) {
  auto at = distill::make_objective("at");
  EXPECT_EQ(at->config(), (nlohmann::json{{"beta", 1000.0}, {"ce_weight", 1.0}}));
  EXPECT_TRUE(at->needs().needs_teacher());
  EXPECT_FALSE(at->needs().teacher_logits);
  EXPECT_TRUE(at->parameters().empty());
  EXPECT_EQ(distill::make_objective("at", at->config())->config(), at->config());
  EXPECT_THROW(distill::make_objective("at", {{"beta", -1.0}}), Error);
  EXPECT_THROW(distill::make_objective("at", {{"alpha", 1.0}}), Error);
  auto student = model("resnet8", 1), teacher = model("resnet20", 2);
  at->bind({student.get(), teacher.get(), {1, 16, 16}, 0});
  EXPECT_EQ(at->needs().student_features, distill::at_feature_names(*student));
  EXPECT_EQ(at->needs().teacher_features, distill::at_feature_names(*teacher));
  EXPECT_EQ(at->needs().student_features, (std::vector<std::string>{"feat1", "feat2", "feat3"}));
}

TEST(ObjectiveAt, LossAndGradientsAreCePlusBetaTimesTheAtSum) {
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  auto at = distill::make_objective("at");
  at->bind({student.get(), teacher.get(), {1, 16, 16}, 0});
  const auto snames = at->needs().student_features, tnames = at->needs().teacher_features;
  // Feature shapes of the two models at 16 x 16 (the teacher's channels are 4x the student's).
  const Tensor x = random_tensor({4, 1, 16, 16}, 9);
  FeaturesOutput sf, tf;
  {
    NoGradGuard no_grad;
    student->eval(), teacher->eval();
    sf = student->forward_features(x, {snames, false});
    tf = teacher->forward_features(x, {tnames, false});
  }
  const Tensor labels = Tensor::from_labels({0, 3, 2, 4}, Device::CPU);
  Tensor l1 = random_tensor({4, 5}, 1), l2 = random_tensor({4, 5}, 1);
  l1.set_requires_grad(true), l2.set_requires_grad(true);
  std::vector<Tensor> f1, f2, t;
  distill::ObjectiveInputs in;
  for (size_t i = 0; i < snames.size(); ++i) {
    const Tensor& f = sf.features.at(snames[i]);
    Tensor a = Tensor::from_vector(f.to_vector(), f.shape()), b = Tensor::from_vector(f.to_vector(), f.shape());
    a.set_requires_grad(true), b.set_requires_grad(true);
    f1.push_back(a), f2.push_back(b);
    in.student_features[snames[i]] = b;
    t.push_back(tf.features.at(tnames[i]));
    in.teacher_features[tnames[i]] = tf.features.at(tnames[i]);
  }
  Tensor ref = ops::add(ops::cross_entropy(l1, labels), distill::at_loss_sum(f1, t, distill::kATBeta));
  ref.backward();
  in.student_logits = l2, in.labels = labels;
  Tensor got = at->loss(in);
  got.backward();
  double worst = worst_relative({got.item()}, {ref.item()});
  worst = std::max(worst, worst_relative(l2.grad().to_vector(), l1.grad().to_vector()));
  for (size_t i = 0; i < f1.size(); ++i)
    worst = std::max(worst, worst_relative(f2[i].grad().to_vector(), f1[i].grad().to_vector()));
  EXPECT_LE(worst, 1e-4);
  std::printf("at objective: loss %.6f, worst relative error vs CE + 1000 * at_loss_sum %.3g\n", got.item(), worst);
  // The AT term is not negligible next to CE at these sizes: the test sees it.
  EXPECT_GT(got.item(), ops::cross_entropy(l1, labels).item());
}
