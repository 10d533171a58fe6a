// RepDistiller's CIFAR ShuffleNet v1 (ShuffleV1: groups 3, widths 240/480/960, blocks 4/8/4): grouped 1x1 convs
// with a channel shuffle, depthwise 3x3, and an avg-pool shortcut concatenated on stride-2 blocks. Names as
// ShuffleNetv1.py (conv1, bn1, layer1.0.conv1, ..., linear).
#include "models/common.h"

namespace islkd::models {

namespace {

using nn::BatchNorm2d;
using nn::Conv2d;

class ShuffleV1Bottleneck : public Module {
 public:
  ShuffleV1Bottleneck(int64_t in_planes, int64_t out_planes, int64_t stride, int64_t groups, nn::InitRng& rng)
      : stride_(stride) {
    const int64_t mid = out_planes / 4;
    // The stem has 24 channels, not divisible by the groups: the first 1x1 conv after it is not grouped.
    g1_ = in_planes == 24 ? 1 : groups;
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(in_planes, mid, 1, 1, 0, g1_, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(mid));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(mid, mid, 3, stride, 1, mid, false, rng));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(mid));
    conv3_ = register_module("conv3", std::make_shared<Conv2d>(mid, out_planes, 1, 1, 0, groups, false, rng));
    bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(out_planes));
  }
  Tensor forward(const Tensor& x) override { return ops::relu(forward_preact(x)); }
  // The block's output before its final ReLU (ShuffleNetv1.py's `preact` of a stage's last block).
  Tensor forward_preact(const Tensor& x) {
    Tensor out = ops::relu((*bn1_)((*conv1_)(x)));
    if (g1_ > 1) out = ops::channel_shuffle(out, g1_);
    out = ops::relu((*bn2_)((*conv2_)(out)));
    out = (*bn3_)((*conv3_)(out));
    if (stride_ == 2) return ops::concat({out, ops::avg_pool2d(x, 3, 2, 1)});
    return ops::add(out, x);
  }

 private:
  int64_t stride_, g1_;
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
};

class ShuffleNetV1 : public Module {
 public:
  ShuffleNetV1(const std::vector<int64_t>& out_planes, const std::vector<int64_t>& num_blocks, int64_t groups,
               const ModelConfig& cfg) {
    nn::InitRng rng(cfg.seed);
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(cfg.in_channels, 24, 1, 1, 0, 1, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(24));
    int64_t in_planes = 24;
    for (size_t l = 0; l < 3; ++l) {
      auto layer = register_module("layer" + std::to_string(l + 1), std::make_shared<nn::Sequential>());
      for (int64_t i = 0; i < num_blocks[l]; ++i) {
        // A stride-2 block concatenates its pooled input, so its conv branch produces the remaining channels.
        const int64_t cat_planes = i == 0 ? in_planes : 0;
        last_[l] = layer->add(std::make_shared<ShuffleV1Bottleneck>(in_planes, out_planes[l] - cat_planes,
                                                                    i == 0 ? 2 : 1, groups, rng));
        in_planes = out_planes[l];
      }
      layers_.push_back(layer);
    }
    linear_ = register_module("linear", std::make_shared<nn::Linear>(out_planes[2], cfg.num_classes, true, rng));
    // ShuffleNetv1.py keeps PyTorch's default initialisation everywhere.
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = ops::relu((*bn1_)((*conv1_)(x)));
    if (!features_wanted()) {
      for (auto& l : layers_) out = (*l)(out);
      return (*linear_)(detail::final_avg_pool(out, 4));
    }
    // ShuffleNetv1.py's is_feat: [f0 (stem), f1..f3 (stages; pre-ReLU of the last block with preact), f4 (pooled)].
    emit_feature("feat0", out);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string name = "feat" + std::to_string(l + 1);
      if (preact_wanted()) {
        for (size_t i = 0; i + 1 < layers_[l]->size(); ++i) out = (*layers_[l])[i](out);
        Tensor pre = last_[l]->forward_preact(out);
        emit_feature(name, pre);
        out = ops::relu(pre);
      } else {
        out = (*layers_[l])(out);
        emit_feature(name, out);
      }
    }
    Tensor pooled = detail::final_avg_pool(out, 4);
    emit_feature("feat4", pooled);
    return (*linear_)(pooled);
  }
  std::vector<std::string> feature_names() const override { return {"feat0", "feat1", "feat2", "feat3", "feat4"}; }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
  std::shared_ptr<ShuffleV1Bottleneck> last_[3];  // each stage's last block (its pre-activation is a feature)
  std::shared_ptr<nn::Linear> linear_;
};

}  // namespace

std::shared_ptr<Module> make_shufflev1(const ModelConfig& cfg) {
  return std::make_shared<ShuffleNetV1>(std::vector<int64_t>{240, 480, 960}, std::vector<int64_t>{4, 8, 4}, 3, cfg);
}

}  // namespace islkd::models
