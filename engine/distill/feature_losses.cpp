// FitNet's regressor and hint loss, the attention-transfer sum over feature pairs, and the feature shapes the
// objectives size their own parameters from.
#include "engine/distill/feature_losses.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

std::vector<Shape> feature_shapes(Module& m, const std::vector<std::string>& names, const Shape& input,
                                  const std::string& objective) {
  NoGradGuard no_grad;
  const bool was_training = m.is_training();
  m.eval();
  Shape batch = {2};
  batch.insert(batch.end(), input.begin(), input.end());
  const auto params = m.named_parameters();
  const Device device = params.empty() ? Device::CPU : params.front().second.device();
  FeaturesOutput f = m.forward_features(Tensor::zeros(batch, device), FeatureRequest{names, false});
  m.train(was_training);
  std::vector<Shape> shapes;
  for (const auto& n : names) {
    auto it = f.features.find(n);
    ISLKD_CHECK(it != f.features.end(), "objective ", objective, ": the model has no feature '", n, "'");
    shapes.push_back(it->second.shape());
  }
  return shapes;
}

ConvReg::ConvReg(const Shape& s, const Shape& t, uint64_t seed, bool use_relu) : use_relu_(use_relu) {
  ISLKD_CHECK(s.size() == 4 && t.size() == 4, "ConvReg: needs N x C x H x W feature shapes, got student ",
              shape_str(s), " and teacher ", shape_str(t));
  nn::InitRng rng(seed);
  const int64_t sH = s[2], sW = s[3], tH = t[2], tW = t[3];
  if (sH == 2 * tH && sW == 2 * tW) {
    conv_ = register_module("conv", std::make_shared<nn::Conv2d>(s[1], t[1], 3, 2, 1, 1, true, rng));
  } else if (sH * 2 == tH) {
    ISLKD_FAIL("ConvReg: student feature ", shape_str(s), " is half the teacher's ", shape_str(t),
               " in size; RepDistiller uses a transposed convolution there, which this engine does not have");
  } else if (sH >= tH && sW >= tW && sH - tH == sW - tW) {
    conv_ = register_module("conv", std::make_shared<nn::Conv2d>(s[1], t[1], 1 + sH - tH, 1, 0, 1, true, rng));
  } else {
    ISLKD_FAIL("ConvReg: no regressor from student feature ", shape_str(s), " to teacher feature ", shape_str(t));
  }
  bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(t[1]));
}

Tensor ConvReg::forward(const Tensor& x) {
  Tensor y = (*conv_)(x);
  return use_relu_ ? bn_->forward_relu(y) : (*bn_)(y);
}

Tensor fitnet_hint_loss(ConvReg& reg, const Tensor& student_feature, const Tensor& teacher_feature) {
  return ops::mse_loss(reg(student_feature), teacher_feature);
}

namespace {
// f average-pooled to `size` x `size` (adaptive_avg_pool2d for sizes that divide evenly).
Tensor pool_to(const Tensor& f, int64_t size) {
  const int64_t H = f.size(2);
  if (H == size) return f;
  ISLKD_CHECK(H % size == 0 && f.size(3) % size == 0 && f.size(3) / size == H / size, "at_loss: cannot pool a ",
              shape_str(f.shape()), " feature to ", size, " x ", size, " (sizes must divide evenly)");
  return ops::avg_pool2d(f, H / size, H / size);
}
}  // namespace

Tensor at_loss_sum(const std::vector<Tensor>& s, const std::vector<Tensor>& t, float beta) {
  ISLKD_CHECK(!s.empty() && s.size() == t.size(), "at_loss: ", s.size(), " student and ", t.size(),
              " teacher features (need equal, non-zero counts)");
  Tensor total;
  for (size_t i = 0; i < s.size(); ++i) {
    ISLKD_CHECK(s[i].dim() == 4 && t[i].dim() == 4, "at_loss: feature pair ", i, " is not N x C x H x W (student ",
                shape_str(s[i].shape()), ", teacher ", shape_str(t[i].shape()), ")");
    const int64_t size = std::min(s[i].size(2), t[i].size(2));
    Tensor l = ops::at_loss(pool_to(s[i], size), pool_to(t[i], size));
    total = total.defined() ? ops::add(total, l) : l;
  }
  return ops::scale(total, beta);
}

std::vector<std::string> at_feature_names(const Module& model) {
  std::vector<std::string> names = model.feature_names();
  ISLKD_CHECK(names.size() >= 3, "at_loss: the model has ", names.size(), " features; AT needs stage features");
  return std::vector<std::string>(names.begin() + 1, names.end() - 1);
}

}  // namespace islkd::distill
