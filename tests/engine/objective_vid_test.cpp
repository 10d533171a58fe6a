// The `vid` objective: RepDistiller's defaults (CE weight 1, beta 1, no KD term), the stage features feat[1:-1] and
// the trainable VIDLoss parameters it builds at bind (objective.vid.<pair>.regressor.{0,2,4}.weight, .log_scale with
// init_pred_var 5), and its loss and gradients w.r.t. the logits, the student's features and every parameter against
// the PyTorch reference of RepDistiller's VIDLoss (tests/kernels/relational_losses_torch_ref.py) within 1e-4 relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/objective.h"
#include "kernels/common/error.h"
#include "models/registry.h"
#include "tests/common/relational_torch.h"

using namespace islkd;

namespace {

std::shared_ptr<Module> model(const std::string& name, uint64_t seed) {
  models::ModelConfig c;
  c.num_classes = 5, c.in_channels = 1, c.seed = seed;
  return models::create_model(name, c);
}

}  // namespace

TEST(ObjectiveVID, DefaultsAreRepDistillersAndBindBuildsOneVidLossPerStage) {
  auto o = distill::make_objective("vid");
  EXPECT_EQ(o->config(), (nlohmann::json{{"beta", 1.0}, {"ce_weight", 1.0}}));
  EXPECT_TRUE(o->needs().needs_teacher());
  EXPECT_TRUE(o->parameters().empty());
  EXPECT_THROW(distill::make_objective("vid", {{"beta", -1.0}}), Error);
  EXPECT_THROW(distill::make_objective("vid", {{"w_d", 1.0}}), Error);
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  o->bind({student.get(), teacher.get(), {1, 16, 16}, 0});
  EXPECT_EQ(o->needs().student_features, (std::vector<std::string>{"feat1", "feat2", "feat3"}));
  const auto ps = o->parameters();
  ASSERT_EQ(ps.size(), 12u);
  EXPECT_EQ(ps[0].first, "vid.0.log_scale");
  EXPECT_EQ(ps[1].first, "vid.0.regressor.0.weight");
  EXPECT_EQ(ps[3].first, "vid.0.regressor.4.weight");
  EXPECT_EQ(ps[11].first, "vid.2.regressor.4.weight");
  EXPECT_EQ(ps[1].second.shape(), (Shape{64, 16, 1, 1}));  // resnet8 stage 1: 16 channels, resnet8x4: 64
  EXPECT_EQ(ps[2].second.shape(), (Shape{64, 64, 1, 1}));
  // softplus(log_scale) + eps = init_pred_var 5
  const float ls = ps[0].second.to_vector()[0];
  EXPECT_NEAR(std::log1p(std::exp(static_cast<double>(ls))) + 1e-5, 5.0, 1e-5);
}

TEST(ObjectiveVID, LossAndGradientsMatchRepDistillersVidLossInPyTorch) {
  // resnet8 and resnet8x4 stage maps have equal sizes: VID.py's pooling branch is not exercised here.
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  auto o = distill::make_objective("vid");
  o->bind({student.get(), teacher.get(), {1, 16, 16}, 3});
  const auto names = o->needs().student_features;
  const int64_t N = 4;
  FeaturesOutput sf, tf;
  {
    NoGradGuard no_grad;
    student->train(), teacher->eval();
    const Tensor x = Tensor::from_vector(test::random_vector(N * 256, 9, -2, 2), {N, 1, 16, 16});
    sf = student->forward_features(x, {names, false});
    tf = teacher->forward_features(x, {names, false});
  }
  // Perturb the parameters away from their initial values (log_scale especially) so every gradient term is seen.
  auto params = o->parameters();
  {
    NoGradGuard no_grad;
    uint32_t seed = 30;
    for (auto& [n, t] : params) {
      std::vector<float> v = t.to_vector();
      const auto r = test::random_vector(v.size(), ++seed, -0.5f, 0.5f);
      for (size_t i = 0; i < v.size(); ++i) v[i] += n.find("log_scale") != std::string::npos ? 4.0f * r[i] : 0.1f * r[i];
      t.copy_from(Tensor::from_vector(v, t.shape()));
    }
  }
  distill::ObjectiveInputs in;
  std::vector<Tensor> fs;
  nlohmann::json c = {{"kind", "vid_objective"}, {"ce_weight", 1.0}, {"beta", 1.0}, {"pairs", nlohmann::json::array()}};
  for (size_t i = 0; i < names.size(); ++i) {
    const Tensor f0 = sf.features.at(names[i]).to_plain(), t = tf.features.at(names[i]).to_plain();
    fs.push_back(Tensor::from_vector(f0.to_vector(), f0.shape()).set_requires_grad(true));
    in.student_features[names[i]] = fs.back();
    in.teacher_features[names[i]] = t;
    nlohmann::json p = {{"student", f0.to_vector()}, {"student_shape", f0.shape()}, {"teacher", t.to_vector()},
                        {"teacher_shape", t.shape()}};
    const char* keys[] = {"log_scale", "w0", "w2", "w4"};  // parameters() order: the pair's own, then the convs
    for (int k = 0; k < 4; ++k) {
      p[keys[k]] = params[i * 4 + k].second.to_vector();
      p[std::string(keys[k]) + "_shape"] = params[i * 4 + k].second.shape();
    }
    c["pairs"].push_back(p);
  }
  const std::vector<int32_t> y = {0, 3, 2, 4};
  const auto logits = test::random_vector(N * 5, 5, -3, 3);
  Tensor lg = Tensor::from_vector(logits, {N, 5}).set_requires_grad(true);
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < N; ++i) rows.push_back(std::vector<float>(logits.begin() + i * 5, logits.begin() + i * 5 + 5));
  c["logits"] = rows, c["labels"] = y;
  in.student_logits = lg, in.labels = Tensor::from_labels(y, Device::CPU);
  for (auto& [n, t] : params) t.zero_grad();
  Tensor loss = o->loss(in);
  loss.backward();
  const nlohmann::json res = test::run_relational_torch(nlohmann::json::array({c}));
  ASSERT_EQ(res.size(), 1u);
  const nlohmann::json& r = res[0];
  double worst = test::max_relative_error(loss.to_vector(), {r["total"].get<float>()});
  worst = std::max(worst, test::max_relative_error(lg.grad().to_vector(), test::json_floats(r["grad_logits"])));
  for (size_t i = 0; i < names.size(); ++i) {
    worst = std::max(worst, test::max_relative_error(fs[i].grad().to_vector(),
                                                     test::json_floats(r["grad_features"][i])));
    for (int k = 0; k < 4; ++k) {
      const double e = test::max_relative_error(params[i * 4 + k].second.grad().to_vector(),
                                                test::json_floats(r["grad_params"][i][(k + 3) % 4]));
      EXPECT_LE(e, 1e-4) << params[i * 4 + k].first;
      worst = std::max(worst, e);
    }
  }
  EXPECT_LE(worst, 1e-4);
  std::printf("[ torch ] objective vid: loss %.6f, worst relative error over loss, logits, features and the 12 "
              "parameters' gradients %.3e\n", loss.item(), worst);
}
