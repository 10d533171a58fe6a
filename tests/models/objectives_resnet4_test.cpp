// The four-stage ResNets (torchvision's resnet18/34/50, RepDistiller's ResNet50) with every registered feature
// objective: their feature lists (feat0..feat5) are what the objectives ask for, so each binds, computes a finite
// loss and sends gradients into the student (resnet50 -> resnet18; RepDistiller's ResNet50 is the same class with
// another stem, and its features are checked against PyTorch in features_test.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/objective.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

namespace islkd {
namespace {

void one_step_of_every_objective(const std::string& teacher_name, const std::string& student_name, int64_t size) {
  const Shape input = {3, size, size};
  const std::vector<int32_t> train_labels = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0};
  const std::vector<int64_t> batch = {3, 7};
  const Tensor x = test::random_tensor({2, 3, size, size}, 11);
  const Tensor labels = Tensor::from_labels({3, 2});
  auto teacher = models::create_model(teacher_name, {5, 3, 1});
  auto student = models::create_model(student_name, {5, 3, 2});
  teacher->eval();
  nn::fold_batch_norm(*teacher);
  student->train();
  for (const std::string& name : distill::objective_names()) {
    SCOPED_TRACE(name + ": " + teacher_name + " -> " + student_name);
    student->zero_grad();
    auto o = distill::make_objective(name, name == "crd" ? nlohmann::json{{"nce_k", 8}} : nlohmann::json::object());
    o->bind({student.get(), teacher.get(), input, 0, &train_labels});
    const distill::ObjectiveNeeds needs = o->needs();
    if (!needs.features && needs.student_features.empty()) continue;  // ce, kd, dkd: logits only
    distill::ObjectiveInputs in;
    in.labels = labels;
    in.indices = batch;
    if (needs.needs_teacher()) {
      NoGradGuard no_grad;
      FeaturesOutput t = teacher->forward_features(x, {needs.teacher_features, false});
      in.teacher_logits = t.logits;
      in.teacher_features = t.features;
    }
    FeaturesOutput s = student->forward_features(x, {needs.student_features, false});
    in.student_logits = s.logits;
    in.student_features = s.features;
    Tensor loss = o->loss(in);
    const float value = loss.to_vector().at(0);
    EXPECT_TRUE(std::isfinite(value)) << value;
    loss.backward();
    bool stem_grad = false;
    for (auto& [n, p] : student->named_parameters())
      if (n == "conv1.weight") stem_grad = p.grad().defined();
    EXPECT_TRUE(stem_grad);
  }
}

TEST(FourStageResNetObjectives, EveryObjectiveStepsFromResnet50ToResnet18) {
  one_step_of_every_objective("resnet50", "resnet18", 32);
}

}  // namespace
}  // namespace islkd
