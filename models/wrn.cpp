// Wide ResNets of RepDistiller (wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2): pre-activation blocks with a 1x1
// `convShortcut` when the width changes, final BN+ReLU, 8x8 average pool, `fc`. Names as models/wrn.py.
#include "models/common.h"

namespace islkd::models {

namespace {

using nn::BatchNorm2d;
using nn::Conv2d;

class WideBasicBlock : public Module {
 public:
  WideBasicBlock(int64_t in_planes, int64_t out_planes, int64_t stride, nn::InitRng& rng)
      : equal_in_out_(in_planes == out_planes) {
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(in_planes));
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(in_planes, out_planes, 3, stride, 1, 1, false, rng));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_planes));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(out_planes, out_planes, 3, 1, 1, 1, false, rng));
    if (!equal_in_out_)
      shortcut_ = register_module("convShortcut",
                                  std::make_shared<Conv2d>(in_planes, out_planes, 1, stride, 0, 1, false, rng));
  }
  Tensor forward(const Tensor& x) override { return forward_bn1(x, nullptr); }
  // forward(x), also handing out bn1(x) before its ReLU when bn1_out is non-null (wrn.py's preact features are the
  // next block's bn1 applied to a stage output; taking it here, where it is computed anyway, costs no second BN and
  // does not update the running statistics twice as re-applying the layer in training mode would).
  Tensor forward_bn1(const Tensor& x, Tensor* bn1_out) {
    // As in wrn.py: with a width change the shortcut sees the pre-activated input, otherwise the raw input.
    Tensor act;
    if (bn1_out) {
      *bn1_out = (*bn1_)(x);
      act = ops::relu(*bn1_out);
    } else {
      act = bn1_->forward_relu(x);
    }
    if (conv1_->can_fuse() && conv2_->can_fuse() && bn2_->folded_into == conv1_.get()) {
      // Frozen and folded (a KD teacher): conv+ReLU, then conv + shortcut, one oneDNN call each.
      Tensor shortcut = equal_in_out_ ? x : (*shortcut_)(act);
      return conv2_->forward_fused(conv1_->forward_fused(act, true), false, shortcut);
    }
    Tensor out = bn2_->forward_relu((*conv1_)(act));
    out = (*conv2_)(out);
    return ops::add(equal_in_out_ ? x : (*shortcut_)(act), out);
  }

 private:
  bool equal_in_out_;
  std::shared_ptr<Conv2d> conv1_, conv2_, shortcut_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
};

// wrn.py's NetworkBlock: a module holding one Sequential named `layer`.
class NetworkBlock : public Module {
 public:
  NetworkBlock(int64_t n, int64_t in_planes, int64_t out_planes, int64_t stride, nn::InitRng& rng) {
    layer_ = register_module("layer", std::make_shared<nn::Sequential>());
    for (int64_t i = 0; i < n; ++i)
      layer_->add(std::make_shared<WideBasicBlock>(i == 0 ? in_planes : out_planes, out_planes, i == 0 ? stride : 1, rng));
  }
  Tensor forward(const Tensor& x) override { return (*layer_)(x); }
  // forward(x) with the first block's bn1(x) (before its ReLU) in *bn1_out.
  Tensor forward_bn1(const Tensor& x, Tensor* bn1_out) {
    Tensor out = static_cast<WideBasicBlock&>((*layer_)[0]).forward_bn1(x, bn1_out);
    for (size_t i = 1; i < layer_->size(); ++i) out = (*layer_)[i](out);
    return out;
  }

 private:
  std::shared_ptr<nn::Sequential> layer_;
};

class WideResNet : public Module {
 public:
  WideResNet(int64_t depth, int64_t widen, const ModelConfig& cfg) {
    ISLKD_CHECK((depth - 4) % 6 == 0, "WideResNet: depth ", depth, " is not 6n+4");
    const int64_t n = (depth - 4) / 6;
    const int64_t ch[4] = {16, 16 * widen, 32 * widen, 64 * widen};
    nn::InitRng rng(cfg.seed);
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(cfg.in_channels, ch[0], 3, 1, 1, 1, false, rng));
    for (int b = 0; b < 3; ++b)
      blocks_.push_back(register_module("block" + std::to_string(b + 1),
                                        std::make_shared<NetworkBlock>(n, ch[b], ch[b + 1], b == 0 ? 1 : 2, rng)));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(ch[3]));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(ch[3], cfg.num_classes, true, rng));
    // wrn.py: conv weights N(0, sqrt(2/(k*k*out))), BN 1/0, Linear bias 0 (weight left at PyTorch's default).
    detail::init_convs_fan_out(*this, rng, false);
    detail::init_linears(*this, rng, -1.0);
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = (*conv1_)(x);
    if (!features_wanted()) {
      for (auto& b : blocks_) out = (*b)(out);
      out = bn1_->forward_relu(out);
      return (*fc_)(detail::final_avg_pool(out, 8));
    }
    // wrn.py's is_feat: [f0 (conv1), f1..f3 (blocks), f4 (pooled)]. With preact, f1 and f2 are the bn1 outputs of
    // the first block of block2 and block3 (the BN wrn.py re-applies to them) and f3 is the final bn1's output, all
    // before their ReLU.
    emit_feature("feat0", out);
    const bool preact = preact_wanted();
    Tensor pre;
    out = (*blocks_[0])(out);
    if (!preact) emit_feature("feat1", out);
    for (size_t b = 1; b < blocks_.size(); ++b) {
      out = preact ? blocks_[b]->forward_bn1(out, &pre) : (*blocks_[b])(out);
      if (preact) emit_feature("feat" + std::to_string(b), pre);
      if (!preact) emit_feature("feat" + std::to_string(b + 1), out);
    }
    if (preact) {
      pre = (*bn1_)(out);
      emit_feature("feat3", pre);
      out = ops::relu(pre);
    } else {
      out = bn1_->forward_relu(out);
    }
    Tensor pooled = detail::final_avg_pool(out, 8);
    emit_feature("feat4", pooled);
    return (*fc_)(pooled);
  }
  std::vector<std::string> feature_names() const override { return {"feat0", "feat1", "feat2", "feat3", "feat4"}; }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::vector<std::shared_ptr<NetworkBlock>> blocks_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace

std::shared_ptr<Module> make_wrn(const ModelConfig& cfg, int64_t depth, int64_t widen) {
  return std::make_shared<WideResNet>(depth, widen, cfg);
}

}  // namespace islkd::models
