// One check for the relational objectives (sp, pkt, ...): bound to a resnet8 student and a resnet8x4 teacher, the
// objective's loss and its gradients w.r.t. the student's logits and feature equal the PyTorch reference of
// RepDistiller's total (ce_weight * CE + beta * the upstream module, tests/kernels/relational_losses_torch_ref.py)
// within 1e-4 relative. Returns the worst relative error.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "engine/autograd.h"
#include "engine/distill/objective.h"
#include "models/registry.h"
#include "tests/common/relational_torch.h"

namespace islkd::test {

inline double check_relational_objective_against_torch(const std::string& name, const std::string& feature_kind,
                                                       double beta, nlohmann::json options = nlohmann::json::object()) {
  models::ModelConfig c;
  c.num_classes = 5, c.in_channels = 1;
  c.seed = 1;
  auto student = models::create_model("resnet8", c);
  c.seed = 2;
  auto teacher = models::create_model("resnet8x4", c);
  auto objective = distill::make_objective(name);
  objective->bind({student.get(), teacher.get(), {1, 16, 16}, 0});
  const auto needs = objective->needs();
  EXPECT_EQ(needs.student_features.size(), 1u);
  EXPECT_EQ(needs.teacher_features.size(), 1u);
  const int64_t N = 6;
  FeaturesOutput sf, tf;
  {
    NoGradGuard no_grad;
    student->train(), teacher->eval();  // train-mode BN: the batch's features differ per instance
    const Tensor x = Tensor::from_vector(random_vector(N * 256, 9, -2, 2), {N, 1, 16, 16});
    sf = student->forward_features(x, {needs.student_features, false});
    tf = teacher->forward_features(x, {needs.teacher_features, false});
  }
  const Tensor fs0 = sf.features.at(needs.student_features[0]).to_plain();
  const Tensor ft = tf.features.at(needs.teacher_features[0]).to_plain();
  Tensor fs = Tensor::from_vector(fs0.to_vector(), fs0.shape()).set_requires_grad(true);
  const std::vector<int32_t> y = {0, 3, 2, 4, 1, 1};
  const std::vector<float> logits = random_vector(N * 5, 5, -3, 3);
  Tensor lg = Tensor::from_vector(logits, {N, 5}).set_requires_grad(true);
  distill::ObjectiveInputs in;
  in.student_logits = lg, in.labels = Tensor::from_labels(y, Device::CPU);
  in.student_features[needs.student_features[0]] = fs;
  in.teacher_features[needs.teacher_features[0]] = ft;
  Tensor loss = objective->loss(in);
  loss.backward();
  nlohmann::json cases = nlohmann::json::array();
  cases.push_back({{"kind", feature_kind}, {"student", fs0.to_vector()}, {"teacher", ft.to_vector()},
                   {"student_shape", fs0.shape()}, {"teacher_shape", ft.shape()}, {"logits", {}},
                   {"labels", y}, {"ce_weight", 1.0}, {"beta", beta}, {"options", options}});
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < N; ++i) rows.push_back(std::vector<float>(logits.begin() + i * 5, logits.begin() + i * 5 + 5));
  cases[0]["logits"] = rows;
  const nlohmann::json res = run_relational_torch(cases);
  if (res.size() != 1) {
    ADD_FAILURE() << "no PyTorch result";
    return 1.0;
  }
  const double el = max_relative_error(loss.to_vector(), {res[0]["total"].get<float>()});
  const double eg = max_relative_error(fs.grad().to_vector(), json_floats(res[0]["grad"]));
  const double gl = max_relative_error(lg.grad().to_vector(), json_floats(res[0]["grad_logits"]));
  EXPECT_LE(el, 1e-4) << "loss";
  EXPECT_LE(eg, 1e-4) << "dL/dfeature";
  EXPECT_LE(gl, 1e-4) << "dL/dlogits";
  // The distillation term is not negligible next to CE: the test sees it.
  EXPECT_GT(beta * res[0]["loss"].get<double>(), 1e-3);
  std::printf("[ torch ] objective %s: loss %.6f (term %.6f), worst relative error loss %.3e, dfeature %.3e, "
              "dlogits %.3e\n", name.c_str(), loss.item(), beta * res[0]["loss"].get<double>(), el, eg, gl);
  return std::max({el, eg, gl});
}

}  // namespace islkd::test
