// The objective registry and the built-in objectives: names, settings tables, what each needs, and that each one's
// loss and gradients are those of its op.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/autograd.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

using namespace islkd;

namespace {

Tensor logits(int64_t rows, int64_t classes, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(rows * classes));
  for (auto& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(seed >> 40) / double(1ull << 24) * 6.0 - 3.0);
  }
  return Tensor::from_vector(v, {rows, classes});
}

}  // namespace

TEST(ObjectiveRegistry, ListsTheObjectivesAndRefusesUnknownNamesListingTheChoices) {
  const auto names = distill::objective_names();
  for (const char* n : {"ce", "kd", "dkd", "at", "fitnet"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  for (const auto& n : names) EXPECT_EQ(distill::make_objective(n)->name(), n);
  try {
    distill::make_objective("fitnes");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ce, kd, dkd, at, fitnet"), std::string::npos) << e.what();
  }
}

TEST(ObjectiveKd, SettingsTableRoundTripsAndBadValuesAreErrors) {
  auto kd = distill::make_objective("kd", {{"temperature", 2.0}, {"alpha", 0.5}});
  EXPECT_EQ(kd->config(), (nlohmann::json{{"temperature", 2.0}, {"alpha", 0.5}}));
  EXPECT_EQ(distill::make_objective("kd", kd->config())->config(), kd->config());
  EXPECT_EQ(distill::make_objective("kd")->config(), (nlohmann::json{{"temperature", 4.0}, {"alpha", 0.9}}));
  EXPECT_TRUE(kd->needs().teacher_logits);
  EXPECT_TRUE(kd->parameters().empty());
  EXPECT_THROW(distill::make_objective("kd", {{"temperature", -1.0}}), Error);
  EXPECT_THROW(distill::make_objective("kd", {{"beta", 8.0}}), Error);
  EXPECT_THROW(distill::make_objective("ce", {{"alpha", 0.5}}), Error);
  EXPECT_FALSE(distill::make_objective("ce")->needs().needs_teacher());
}

// The objectives are the ops they wrap: the same loss and the same gradient w.r.t. the student's logits.
TEST(ObjectiveKd, LossAndGradientAreThoseOfTheKdLossOp) {
  const Tensor labels = Tensor::from_labels({0, 3, 2, 1, 4}, Device::CPU);
  const Tensor teacher = logits(5, 7, 2);
  KDLossParams p;
  p.temperature = 3.0f, p.alpha = 0.7f;
  Tensor s1 = logits(5, 7, 1), s2 = logits(5, 7, 1);
  s1.set_requires_grad(true), s2.set_requires_grad(true);
  Tensor ref = ops::kd_loss(s1, teacher, labels, p).loss;
  ref.backward();
  distill::ObjectiveInputs in;
  in.student_logits = s2, in.teacher_logits = teacher, in.labels = labels;
  Tensor got = distill::make_objective("kd", {{"temperature", 3.0}, {"alpha", 0.7}})->loss(in);
  got.backward();
  EXPECT_EQ(got.item(), ref.item());
  EXPECT_EQ(s2.grad().to_vector(), s1.grad().to_vector());
}

TEST(ObjectiveCe, LossAndGradientAreThoseOfCrossEntropy) {
  const Tensor labels = Tensor::from_labels({6, 0, 1}, Device::CPU);
  Tensor s1 = logits(3, 7, 4), s2 = logits(3, 7, 4);
  s1.set_requires_grad(true), s2.set_requires_grad(true);
  Tensor ref = ops::cross_entropy(s1, labels);
  ref.backward();
  distill::ObjectiveInputs in;
  in.student_logits = s2, in.labels = labels;
  Tensor got = distill::make_objective("ce")->loss(in);
  got.backward();
  EXPECT_EQ(got.item(), ref.item());
  EXPECT_EQ(s2.grad().to_vector(), s1.grad().to_vector());
}
