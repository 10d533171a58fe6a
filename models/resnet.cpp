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
    if (fusable()) {
      // Frozen and folded (a KD teacher): conv+ReLU, then conv + shortcut + ReLU, one oneDNN call each.
      Tensor residual = downsample_ ? (*downsample_)(x) : x;
      return conv2_->forward_fused(conv1_->forward_fused(x, true), true, residual);
    }
    Tensor out = bn1_->forward_relu((*conv1_)(x));
    out = (*bn2_)((*conv2_)(out));
    Tensor residual = downsample_ ? (*downsample_)(x) : x;
    return ops::relu(ops::add(out, residual));
  }
  // The block's output before its final ReLU (RepDistiller's `preact` of a stage's last block); forward(x) is
  // relu(forward_preact(x)).
  Tensor forward_preact(const Tensor& x) {
    if (fusable()) {
      Tensor residual = downsample_ ? (*downsample_)(x) : x;
      return conv2_->forward_fused(conv1_->forward_fused(x, true), false, residual);
    }
    Tensor out = bn1_->forward_relu((*conv1_)(x));
    out = (*bn2_)((*conv2_)(out));
    return ops::add(out, downsample_ ? (*downsample_)(x) : x);
  }

 private:
  bool fusable() const {
    return conv1_->can_fuse() && conv2_->can_fuse() && bn1_->folded_into == conv1_.get() &&
           bn2_->folded_into == conv2_.get();
  }
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
        const int64_t stride = (i == 0 && s > 0) ? 2 : 1;
        last_[s] = layer->add(std::make_shared<BasicBlock>(inplanes, filters[s + 1], stride, rng));
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
    if (!features_wanted()) {
      for (auto& layer : layers_) out = (*layer)(out);
      return (*fc_)(detail::final_avg_pool(out, 8));
    }
    // resnet.py's is_feat: [f0 (stem), f1..f3 (stages; pre-ReLU of the last block with preact), f4 (pooled)].
    emit_feature("feat0", out);
    for (size_t s = 0; s < layers_.size(); ++s) {
      const std::string name = "feat" + std::to_string(s + 1);
      if (preact_wanted()) {
        for (size_t i = 0; i + 1 < layers_[s]->size(); ++i) out = (*layers_[s])[i](out);
        Tensor pre = last_[s]->forward_preact(out);
        emit_feature(name, pre);
        out = ops::relu(pre);
      } else {
        out = (*layers_[s])(out);
        emit_feature(name, out);
      }
    }
    Tensor pooled = detail::final_avg_pool(out, 8);
    emit_feature("feat4", pooled);
    return (*fc_)(pooled);
  }
  std::vector<std::string> feature_names() const override { return {"feat0", "feat1", "feat2", "feat3", "feat4"}; }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
  std::shared_ptr<BasicBlock> last_[3];  // each stage's last block (its pre-activation is a feature)
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace

std::shared_ptr<Module> make_resnet(const ModelConfig& cfg, int64_t depth, const std::vector<int64_t>& filters) {
  return std::make_shared<ResNet>(depth, filters, cfg);
}

}  // namespace islkd::models
