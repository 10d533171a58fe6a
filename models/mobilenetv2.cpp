// RepDistiller's CIFAR MobileNetV2 (`mobile_half`: expansion 6, width 0.5; model_dict's MobileNetV2): stride-2
// stem, seven stages of inverted residuals, 1x1 conv to 1280, average pool, `classifier.0`. Names as mobilenetv2.py.
#include "models/common.h"

namespace islkd::models {

namespace {

using nn::BatchNorm2d;
using nn::Conv2d;

class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t inp, int64_t oup, int64_t stride, int64_t expand, nn::InitRng& rng)
      : use_res_(stride == 1 && inp == oup) {
    const int64_t hidden = inp * expand;
    conv_ = register_module("conv", std::make_shared<nn::Sequential>());
    conv_->add(std::make_shared<Conv2d>(inp, hidden, 1, 1, 0, 1, false, rng));  // pointwise expand
    conv_->add(std::make_shared<BatchNorm2d>(hidden));
    conv_->add(std::make_shared<nn::ReLU>());
    conv_->add(std::make_shared<Conv2d>(hidden, hidden, 3, stride, 1, hidden, false, rng));  // depthwise
    conv_->add(std::make_shared<BatchNorm2d>(hidden));
    conv_->add(std::make_shared<nn::ReLU>());
    conv_->add(std::make_shared<Conv2d>(hidden, oup, 1, 1, 0, 1, false, rng));  // pointwise linear
    conv_->add(std::make_shared<BatchNorm2d>(oup));
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = (*conv_)(x);
    return use_res_ ? ops::add(x, out) : out;
  }

 private:
  bool use_res_;
  std::shared_ptr<nn::Sequential> conv_;
};

std::shared_ptr<nn::Sequential> conv_bn_relu(int64_t inp, int64_t oup, int64_t k, int64_t stride, nn::InitRng& rng) {
  auto s = std::make_shared<nn::Sequential>();
  s->add(std::make_shared<Conv2d>(inp, oup, k, stride, k / 2, 1, false, rng));
  s->add(std::make_shared<BatchNorm2d>(oup));
  s->add(std::make_shared<nn::ReLU>());
  return s;
}

class MobileNetV2 : public Module {
 public:
  MobileNetV2(int64_t expand, double width, const ModelConfig& cfg) {
    nn::InitRng rng(cfg.seed);
    // t, c, n, s (mobilenetv2.py's interverted_residual_setting)
    const int64_t setting[7][4] = {{1, 16, 1, 1},      {expand, 24, 2, 1}, {expand, 32, 3, 2}, {expand, 64, 4, 2},
                                   {expand, 96, 3, 1}, {expand, 160, 3, 2}, {expand, 320, 1, 1}};
    int64_t input_channel = static_cast<int64_t>(32 * width);
    conv1_ = register_module("conv1", conv_bn_relu(cfg.in_channels, input_channel, 3, 2, rng));
    blocks_ = register_module("blocks", std::make_shared<nn::Sequential>());  // an nn.ModuleList in PyTorch
    for (const auto& st : setting) {
      const int64_t output_channel = static_cast<int64_t>(st[1] * width);
      auto stage = std::make_shared<nn::Sequential>();
      for (int64_t i = 0; i < st[2]; ++i) {
        stage->add(std::make_shared<InvertedResidual>(input_channel, output_channel, i == 0 ? st[3] : 1, st[0], rng));
        input_channel = output_channel;
      }
      blocks_->add(stage);
    }
    const int64_t last_channel = width > 1.0 ? static_cast<int64_t>(1280 * width) : 1280;
    conv2_ = register_module("conv2", conv_bn_relu(input_channel, last_channel, 1, 1, rng));
    classifier_ = register_module("classifier", std::make_shared<nn::Sequential>());
    classifier_->add(std::make_shared<nn::Linear>(last_channel, cfg.num_classes, true, rng));
    // mobilenetv2.py: conv N(0, sqrt(2/(k*k*out))), BN 1/0, Linear N(0, 0.01) with zero bias.
    detail::init_convs_fan_out(*this, rng, true);
    detail::init_linears(*this, rng, 0.01);
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = (*conv1_)(x);
    if (features_wanted()) {
      // mobilenetv2.py's is_feat: f0 = conv1, f1..f4 after blocks 1, 2, 4 and 6, f5 = the pooled vector. The
      // stages end in a linear bottleneck (no ReLU), so preact changes nothing, as upstream.
      emit_feature("feat0", out);
      const int feat_after[7] = {0, 1, 2, 0, 3, 0, 4};
      for (size_t i = 0; i < blocks_->size(); ++i) {
        out = (*blocks_)[i](out);
        if (feat_after[i] > 0) emit_feature("feat" + std::to_string(feat_after[i]), out);
      }
      out = (*conv2_)(out);
      Tensor pooled = detail::final_avg_pool(out, 2);
      emit_feature("feat5", pooled);
      return (*classifier_)(pooled);
    }
    out = (*conv2_)((*blocks_)(out));
    // nn.AvgPool2d(2, ceil_mode=True) on the 2x2 map of a 32x32 input (the whole map); maps up to 2x2 are
    // averaged whole, which is what ceil_mode gives for them.
    return (*classifier_)(detail::final_avg_pool(out, 2));
  }
  std::vector<std::string> feature_names() const override {
    return {"feat0", "feat1", "feat2", "feat3", "feat4", "feat5"};
  }

 private:
  std::shared_ptr<nn::Sequential> conv1_, blocks_, conv2_, classifier_;
};

}  // namespace

std::shared_ptr<Module> make_mobilenetv2(const ModelConfig& cfg, int64_t expand, double width) {
  return std::make_shared<MobileNetV2>(expand, width, cfg);
}

}  // namespace islkd::models
