// Every registered objective on device cuda (emulated here, the GPU in islkd_tests_gpu) against the same objective
// on the CPU: the loss and its gradients w.r.t. the student's logits, the student's features and the objective's
// own parameters (FitNet's regressor) within 1e-4 relative. The CPU side is tested against the ops and, through
// them, PyTorch (tests/engine/objective_*_test.cpp, tests/kernels/*_loss_test.cpp); this closes the loop on the
// device the objectives train on. Features are real ones (resnet8 student, resnet8x4 teacher, forward_features).
// Objectives with per-instance state (crd) bind to a 40-instance training set and see the batch's instance indices;
// their buffers after the step (crd's memories and Z) must agree too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

namespace islkd {
namespace {

std::shared_ptr<Module> model(const std::string& name, uint64_t seed) {
  models::ModelConfig c;
  c.num_classes = 5, c.in_channels = 1, c.seed = seed;
  return models::create_model(name, c);
}

double worst_relative(const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 1e-12, worst = 0.0;
  for (float w : want) scale = std::max(scale, std::fabs(static_cast<double>(w)));
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])) / scale);
  return worst;
}

struct Side {
  std::unique_ptr<distill::Objective> objective;
  distill::ObjectiveInputs in;
  Tensor loss;
};

// Leaf copies (requiring a gradient for the student's) of the CPU values on `device`.
Side run_on(Device device, const std::string& name, Module& student, Module& teacher, const Tensor& x,
            const std::vector<int32_t>& labels) {
  Side s;
  // crd's default nce_k (16384) needs a larger training set than this one.
  s.objective = distill::make_objective(name, name == "crd" ? nlohmann::json{{"nce_k", 16}} : nlohmann::json::object());
  static const std::vector<int32_t> train_labels = [] {
    std::vector<int32_t> l;
    for (int32_t i = 0; i < 40; ++i) l.push_back(i % 5);
    return l;
  }();
  s.objective->bind({&student, &teacher, {1, 16, 16}, 7, &train_labels});
  s.objective->to(device);
  const distill::ObjectiveNeeds needs = s.objective->needs();
  auto leaf = [&](const Tensor& t, bool grad) {
    Tensor c = t.detach().to(device).detach();
    c.set_requires_grad(grad);
    return c;
  };
  FeaturesOutput so = student.forward_features(x, FeatureRequest{needs.student_features, false});
  FeaturesOutput to = teacher.forward_features(x, FeatureRequest{needs.teacher_features, false});
  s.in.student_logits = leaf(so.logits, true);
  s.in.teacher_logits = leaf(to.logits, false);
  for (const auto& n : needs.student_features) s.in.student_features[n] = leaf(so.features.at(n), true);
  for (const auto& n : needs.teacher_features) s.in.teacher_features[n] = leaf(to.features.at(n), false);
  s.in.labels = Tensor::from_labels(labels, device);
  s.in.epoch = 3;
  s.in.indices = {0, 13, 22, 39};
  s.loss = s.objective->loss(s.in);
  s.loss.backward();
  return s;
}

TEST(CudaObjectives, EveryObjectiveMatchesTheCpuInLossAndGradients) {
  auto student = model("resnet8", 1), teacher = model("resnet8x4", 2);
  teacher->eval();
  const Tensor x = test::random_tensor({4, 1, 16, 16}, 11);
  const std::vector<int32_t> labels = {0, 3, 2, 4};
  for (const std::string& name : distill::objective_names()) {
    SCOPED_TRACE(name);
    Side cpu = run_on(Device::CPU, name, *student, *teacher, x, labels);
    Side gpu = run_on(Device::CUDA, name, *student, *teacher, x, labels);
    ASSERT_TRUE(gpu.loss.is_cuda());
    double worst = worst_relative({gpu.loss.item()}, {cpu.loss.item()});
    worst = std::max(worst, worst_relative(gpu.in.student_logits.grad().to_vector(),
                                           cpu.in.student_logits.grad().to_vector()));
    for (const auto& [n, f] : cpu.in.student_features) {
      ASSERT_TRUE(gpu.in.student_features.at(n).grad().defined()) << n;
      worst = std::max(worst, worst_relative(gpu.in.student_features.at(n).grad().to_vector(), f.grad().to_vector()));
    }
    // The objective's parameters, relative to the largest gradient among them: FitNet's conv bias feeds a
    // training-mode batch norm, which removes it, so its exact gradient is 0 and what both devices compute is
    // rounding noise (~1e-7) that a per-tensor relative error would blow up.
    const auto pc = cpu.objective->parameters(), pg = gpu.objective->parameters();
    ASSERT_EQ(pc.size(), pg.size());
    double param_scale = 1e-12;
    for (const auto& [n, p] : pc)
      for (float v : p.grad().to_vector()) param_scale = std::max(param_scale, std::fabs(double(v)));
    for (size_t i = 0; i < pc.size(); ++i) {
      ASSERT_TRUE(pg[i].second.is_cuda()) << pg[i].first;
      ASSERT_TRUE(pg[i].second.grad().defined()) << pg[i].first;
      const std::vector<float> got = pg[i].second.grad().to_vector(), want = pc[i].second.grad().to_vector();
      for (size_t j = 0; j < want.size(); ++j)
        worst = std::max(worst, std::fabs(double(got[j]) - double(want[j])) / param_scale);
    }
    const auto bc = cpu.objective->buffers(), bg = gpu.objective->buffers();
    ASSERT_EQ(bc.size(), bg.size());
    for (size_t i = 0; i < bc.size(); ++i) {
      ASSERT_TRUE(bg[i].second.is_cuda()) << bg[i].first;
      worst = std::max(worst, worst_relative(bg[i].second.to_vector(), bc[i].second.to_vector()));
    }
    EXPECT_LE(worst, 1e-4);
    std::printf("%s on cuda: loss %.6f (cpu %.6f), worst relative error %.3g\n", name.c_str(), gpu.loss.item(),
                cpu.loss.item(), worst);
  }
}

}  // namespace
}  // namespace islkd
