// CIFAR ResNets of RepDistiller (resnet8..110, resnet8x4, resnet32x4): BasicBlocks in three stages, a 1x1-conv+BN
// `downsample` shortcut when the shape changes, 8x8 average pool, `fc`. Names as models/resnet.py.
#include "models/common.h"

namespace islkd::models {

namespace {

using nn::BatchNorm2d;
using nn::Conv2d;

class BasicBlock : public Module {
 public:
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, nn::InitRng& rng) {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(inplanes, planes, 3, stride, 1, 1, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, 1, 1, false, rng));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
    if (stride != 1 || inplanes != planes) {
      downsample_ = register_module("downsample", std::make_shared<nn::Sequential>());
      downsample_->add(std::make_shared<Conv2d>(inplanes, planes, 1, stride, 0, 1, false, rng));
      downsample_->add(std::make_shared<BatchNorm2d>(planes));
    }
  }
  Tensor forward(const Tensor& x) override {
    if (conv1_->can_fuse() && conv2_->can_fuse() && bn1_->folded_into == conv1_.get() &&
        bn2_->folded_into == conv2_.get()) {
      // Frozen and folded (a KD teacher): conv+ReLU, then conv + shortcut + ReLU, one oneDNN call each.
      Tensor residual = downsample_ ? (*downsample_)(x) : x;
      return conv2_->forward_fused(conv1_->forward_fused(x, true), true, residual);
    }
    Tensor out = bn1_->forward_relu((*conv1_)(x));
    out = (*bn2_)((*conv2_)(out));
    Tensor residual = downsample_ ? (*downsample_)(x) : x;
    return ops::relu(ops::add(out, residual));
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<nn::Sequential> downsample_;
};

class ResNet : public Module {
 public:
  ResNet(int64_t depth, const std::vector<int64_t>& filters, const ModelConfig& cfg) {
    ISLKD_CHECK((depth - 2) % 6 == 0, "ResNet: depth ", depth, " is not 6n+2");
    const int64_t n = (depth - 2) / 6;
    nn::InitRng rng(cfg.seed);
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(cfg.in_channels, filters[0], 3, 1, 1, 1, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(filters[0]));
    int64_t inplanes = filters[0];
    for (int s = 0; s < 3; ++s) {
      auto layer = register_module("layer" + std::to_string(s + 1), std::make_shared<nn::Sequential>());
      for (int64_t i = 0; i < n; ++i) {
        layer->add(std::make_shared<BasicBlock>(inplanes, filters[s + 1], (i == 0 && s > 0) ? 2 : 1, rng));
        inplanes = filters[s + 1];
      }
      layers_.push_back(layer);
    }
    fc_ = register_module("fc", std::make_shared<nn::Linear>(filters[3], cfg.num_classes, true, rng));
    // RepDistiller: kaiming_normal_(fan_out, relu) for convs, BN 1/0 (the constructor's), Linear left at default.
    detail::init_convs_fan_out(*this, rng, false);
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = conv1_->can_fuse() && bn1_->folded_into == conv1_.get() ? conv1_->forward_fused(x, true)
                                                                          : bn1_->forward_relu((*conv1_)(x));
    for (auto& layer : layers_) out = (*layer)(out);
    return (*fc_)(detail::final_avg_pool(out, 8));
  }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace

std::shared_ptr<Module> make_resnet(const ModelConfig& cfg, int64_t depth, const std::vector<int64_t>& filters) {
  return std::make_shared<ResNet>(depth, filters, cfg);
}

}  // namespace islkd::models
