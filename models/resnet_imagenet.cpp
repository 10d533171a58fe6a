// Four-stage ResNets: torchvision's ImageNet resnet18/34/50 (7x7/2 stem, 3x3/2 max pool, `downsample` shortcuts,
// `fc`; names as torchvision.models.resnet, so its checkpoints load) and RepDistiller's CIFAR ResNet50
// (models/resnetv2.py: 3x3/1 stem, no max pool, `shortcut`, `linear`). Both end in a global average pool, so any
// input size that survives the strides works.
#include "models/common.h"

namespace islkd::models {

namespace {

using nn::BatchNorm2d;
using nn::Conv2d;

// A residual block as a chain of conv+BN pairs (BasicBlock: 3x3, 3x3; Bottleneck: 1x1, 3x3 with the stride
// (torchvision v1.5 and resnetv2.py alike), 1x1 to 4x the width), ReLU after every pair but the last, then the
// shortcut is added and a ReLU closes the block. Names conv1/bn1, conv2/bn2[, conv3/bn3], <shortcut>.0/.1.
class Block : public Module {
 public:
  Block(bool bottleneck, int64_t inplanes, int64_t planes, int64_t stride, const std::string& shortcut_name,
        nn::InitRng& rng) {
    const int64_t out = bottleneck ? planes * 4 : planes;
    struct Spec {
      int64_t in, out, kernel, stride;
    };
    const std::vector<Spec> specs = bottleneck ? std::vector<Spec>{{inplanes, planes, 1, 1},
                                                                   {planes, planes, 3, stride},
                                                                   {planes, out, 1, 1}}
                                               : std::vector<Spec>{{inplanes, planes, 3, stride}, {planes, out, 3, 1}};
    for (size_t i = 0; i < specs.size(); ++i) {
      const Spec& s = specs[i];
      const std::string k = std::to_string(i + 1);
      convs_.push_back(register_module(
          "conv" + k, std::make_shared<Conv2d>(s.in, s.out, s.kernel, s.stride, s.kernel / 2, 1, false, rng)));
      bns_.push_back(register_module("bn" + k, std::make_shared<BatchNorm2d>(s.out)));
    }
    if (stride != 1 || inplanes != out) {
      shortcut_ = register_module(shortcut_name, std::make_shared<nn::Sequential>());
      shortcut_->add(std::make_shared<Conv2d>(inplanes, out, 1, stride, 0, 1, false, rng));
      shortcut_->add(std::make_shared<BatchNorm2d>(out));
    }
  }
  Tensor forward(const Tensor& x) override { return run(x, true); }
  // The block's output before its final ReLU (RepDistiller's `preact` of a stage's last block).
  Tensor forward_preact(const Tensor& x) { return run(x, false); }

 private:
  Tensor run(const Tensor& x, bool relu) {
    Tensor residual = shortcut_ ? (*shortcut_)(x) : x;
    Tensor out = x;
    const size_t last = convs_.size() - 1;
    if (fusable()) {
      // Frozen and folded (a KD teacher): each conv with its ReLU, the last with the shortcut added, one oneDNN
      // call each.
      for (size_t i = 0; i < last; ++i) out = convs_[i]->forward_fused(out, true);
      return convs_[last]->forward_fused(out, relu, residual);
    }
    for (size_t i = 0; i < last; ++i) out = bns_[i]->forward_relu((*convs_[i])(out));
    out = ops::add((*bns_[last])((*convs_[last])(out)), residual);
    return relu ? ops::relu(out) : out;
  }
  bool fusable() const {
    for (size_t i = 0; i < convs_.size(); ++i)
      if (!convs_[i]->can_fuse() || bns_[i]->folded_into != convs_[i].get()) return false;
    return true;
  }
  std::vector<std::shared_ptr<Conv2d>> convs_;
  std::vector<std::shared_ptr<BatchNorm2d>> bns_;
  std::shared_ptr<nn::Sequential> shortcut_;
};

struct Arch {
  bool bottleneck;
  std::vector<int64_t> blocks;  // per stage
  bool imagenet;                // torchvision (7x7/2 stem + max pool, `downsample`, `fc`) or resnetv2.py
};

class ResNet4 : public Module {
 public:
  ResNet4(const Arch& arch, const ModelConfig& cfg) : imagenet_(arch.imagenet) {
    nn::InitRng rng(cfg.seed);
    conv1_ = register_module("conv1", arch.imagenet
                                          ? std::make_shared<Conv2d>(cfg.in_channels, 64, 7, 2, 3, 1, false, rng)
                                          : std::make_shared<Conv2d>(cfg.in_channels, 64, 3, 1, 1, 1, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(64));
    int64_t inplanes = 64;
    const int64_t widths[4] = {64, 128, 256, 512};
    for (int s = 0; s < 4; ++s) {
      auto layer = register_module("layer" + std::to_string(s + 1), std::make_shared<nn::Sequential>());
      for (int64_t i = 0; i < arch.blocks[s]; ++i) {
        const int64_t stride = (i == 0 && s > 0) ? 2 : 1;
        last_[s] = layer->add(std::make_shared<Block>(arch.bottleneck, inplanes, widths[s], stride,
                                                      arch.imagenet ? "downsample" : "shortcut", rng));
        inplanes = arch.bottleneck ? widths[s] * 4 : widths[s];
      }
      layers_.push_back(layer);
    }
    fc_ = register_module(arch.imagenet ? "fc" : "linear",
                          std::make_shared<nn::Linear>(inplanes, cfg.num_classes, true, rng));
    // torchvision and resnetv2.py: kaiming_normal_(fan_out, relu) for convs, BN 1/0 (the constructor's), Linear
    // left at PyTorch's default (zero_init_residual off).
    detail::init_convs_fan_out(*this, rng, false);
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = conv1_->can_fuse() && bn1_->folded_into == conv1_.get() ? conv1_->forward_fused(x, true)
                                                                          : bn1_->forward_relu((*conv1_)(x));
    const bool feats = features_wanted();
    // resnetv2.py's is_feat: [f0 (stem), f1..f4 (stages; pre-ReLU of the last block with preact), f5 (pooled)];
    // for torchvision's layout f0 is taken before the max pool, as mdistiller's ImageNet ResNet does.
    if (feats) emit_feature("feat0", out);
    if (imagenet_) out = ops::max_pool2d(out, 3, 2, 1);
    for (size_t s = 0; s < layers_.size(); ++s) {
      if (feats && preact_wanted()) {
        for (size_t i = 0; i + 1 < layers_[s]->size(); ++i) out = (*layers_[s])[i](out);
        Tensor pre = last_[s]->forward_preact(out);
        emit_feature("feat" + std::to_string(s + 1), pre);
        out = ops::relu(pre);
      } else {
        out = (*layers_[s])(out);
        if (feats) emit_feature("feat" + std::to_string(s + 1), out);
      }
    }
    Tensor pooled = ops::global_avg_pool(out);
    if (feats) emit_feature("feat5", pooled);
    return (*fc_)(pooled);
  }
  std::vector<std::string> feature_names() const override {
    return {"feat0", "feat1", "feat2", "feat3", "feat4", "feat5"};
  }

 private:
  bool imagenet_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
  std::shared_ptr<Block> last_[4];  // each stage's last block (its pre-activation is a feature)
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace

std::shared_ptr<Module> make_resnet_imagenet(const ModelConfig& cfg, int depth) {
  switch (depth) {
    case 18: return std::make_shared<ResNet4>(Arch{false, {2, 2, 2, 2}, true}, cfg);
    case 34: return std::make_shared<ResNet4>(Arch{false, {3, 4, 6, 3}, true}, cfg);
    case 50: return std::make_shared<ResNet4>(Arch{true, {3, 4, 6, 3}, true}, cfg);
  }
  ISLKD_FAIL("torchvision ResNet: no configuration for depth ", depth, " (18, 34, 50)");
}

std::shared_ptr<Module> make_resnetv2_cifar(const ModelConfig& cfg, int depth) {
  ISLKD_CHECK(depth == 50, "RepDistiller resnetv2: only ResNet50 is in the zoo, got depth ", depth);
  return std::make_shared<ResNet4>(Arch{true, {3, 4, 6, 3}, false}, cfg);
}

}  // namespace islkd::models
