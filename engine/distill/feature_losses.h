// The losses of the feature-based distillation methods, as functions over the model's named features
// (Module::forward_features) for the objectives to call: FitNet's hint through a trainable regressor and attention
// transfer. Constants are RepDistiller's (train_student.py, scripts/run_cifar_distill.sh, distiller_zoo/).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"

namespace islkd::distill {

// RepDistiller's loss weights (run_cifar_distill.sh: `--distill hint -a 0 -b 100`, `--distill attention -a 0
// -b 1000`; the CE weight gamma stays 1 and the KD weight alpha 0).
constexpr float kFitNetBeta = 100.0f;
constexpr float kATBeta = 1000.0f;
// FitNet's hint layer (train_student.py's --hint_layer default 2): the feature `feat2`, the middle stage.
constexpr int kFitNetHintLayer = 2;

// RepDistiller's ConvReg (models/util.py): maps the student's hint feature (N x Cs x Hs x Ws) onto the teacher's
// (N x Ct x Ht x Wt) with conv + BatchNorm2d + ReLU. The conv (with bias) is 3x3 stride 2 padding 1 when Hs = 2 Ht,
// and a (1+Hs-Ht) x (1+Ws-Wt) conv when Hs >= Ht (1x1 for equal sizes). RepDistiller's transposed conv for
// 2 Hs = Ht is not available here (an islkd::Error says so), nor are non-square kernels. Parameter names as
// upstream (conv.weight, conv.bias, bn.*), PyTorch's default initialisation from `seed`. The objective owns it:
// it trains, checkpoints and resumes with the student.
class ConvReg : public Module {
 public:
  ConvReg(const Shape& student_shape, const Shape& teacher_shape, uint64_t seed, bool use_relu = true);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
  bool use_relu_;
};

// The shapes of a model's named features for a batch of 2 instances of `input` (C x H x W), read by one forward in
// eval mode under no-grad (no state changes), on the model's device: what an objective sizes its own parameters
// from at bind(). A name the model does not have is an islkd::Error naming `objective`.
std::vector<Shape> feature_shapes(Module& m, const std::vector<std::string>& names, const Shape& input,
                                  const std::string& objective);

// FitNet (Romero et al.; RepDistiller's HintLoss = nn.MSELoss()): mean squared error between reg(student) and the
// teacher's feature, unweighted (the objective applies kFitNetBeta). Gradients reach the student and `reg`.
Tensor fitnet_hint_loss(ConvReg& reg, const Tensor& student_feature, const Tensor& teacher_feature);

// Attention transfer (RepDistiller's Attention(p = 2)) summed over feature pairs, times beta: for each pair the
// larger map is average-pooled to the smaller one's size (AT.py's adaptive_avg_pool2d; here the sizes must divide),
// then ops::at_loss. RepDistiller pairs feat[1:-1] (every stage output, neither the stem nor the pooled vector):
// at_feature_names gives those names of a model.
Tensor at_loss_sum(const std::vector<Tensor>& student_features, const std::vector<Tensor>& teacher_features,
                   float beta = kATBeta);
std::vector<std::string> at_feature_names(const Module& model);

}  // namespace islkd::distill
