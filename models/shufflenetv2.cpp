// RepDistiller's CIFAR ShuffleNet v2 (ShuffleV2, net size 1: widths 116/232/464, 1024 head, blocks 3/7/3):
// channel split, 1x1 / depthwise 3x3 / 1x1 branch, concat, shuffle; stride-2 DownBlocks with two branches.
// Names as ShuffleNetv2.py (layer1.0 is the DownBlock: conv1..conv5, bn1..bn5).
#include "models/common.h"

namespace islkd::models {

namespace {

using nn::BatchNorm2d;
using nn::Conv2d;

class ShuffleV2Block : public Module {
 public:
  ShuffleV2Block(int64_t in_channels, nn::InitRng& rng) : in_(in_channels), c_(in_channels / 2) {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(c_, c_, 1, 1, 0, 1, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(c_));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(c_, c_, 3, 1, 1, c_, false, rng));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(c_));
    conv3_ = register_module("conv3", std::make_shared<Conv2d>(c_, c_, 1, 1, 0, 1, false, rng));
    bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(c_));
  }
  Tensor forward(const Tensor& x) override { return forward_preact(x, nullptr); }
  // forward(x), also handing out ShuffleNetv2.py's `preact` of a stage's last block when preact is non-null: the
  // concatenation [x1, bn3(conv3(..))] before the ReLU and before the shuffle, as upstream returns it.
  Tensor forward_preact(const Tensor& x, Tensor* preact) {
    std::vector<Tensor> halves = ops::split(x, {c_, in_ - c_});
    Tensor out = ops::relu((*bn1_)((*conv1_)(halves[1])));
    out = (*bn2_)((*conv2_)(out));
    out = (*bn3_)((*conv3_)(out));
    if (preact) *preact = ops::concat({halves[0], out});
    out = ops::relu(out);
    return ops::channel_shuffle(ops::concat({halves[0], out}), 2);
  }

 private:
  int64_t in_, c_;
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
};

class ShuffleV2DownBlock : public Module {
 public:
  ShuffleV2DownBlock(int64_t in, int64_t out, nn::InitRng& rng) {
    const int64_t mid = out / 2;
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(in, in, 3, 2, 1, in, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(in));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(in, mid, 1, 1, 0, 1, false, rng));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(mid));
    conv3_ = register_module("conv3", std::make_shared<Conv2d>(in, mid, 1, 1, 0, 1, false, rng));
    bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(mid));
    conv4_ = register_module("conv4", std::make_shared<Conv2d>(mid, mid, 3, 2, 1, mid, false, rng));
    bn4_ = register_module("bn4", std::make_shared<BatchNorm2d>(mid));
    conv5_ = register_module("conv5", std::make_shared<Conv2d>(mid, mid, 1, 1, 0, 1, false, rng));
    bn5_ = register_module("bn5", std::make_shared<BatchNorm2d>(mid));
  }
  Tensor forward(const Tensor& x) override {
    Tensor left = (*bn1_)((*conv1_)(x));
    left = ops::relu((*bn2_)((*conv2_)(left)));
    Tensor right = ops::relu((*bn3_)((*conv3_)(x)));
    right = (*bn4_)((*conv4_)(right));
    right = ops::relu((*bn5_)((*conv5_)(right)));
    return ops::channel_shuffle(ops::concat({left, right}), 2);
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_, conv4_, conv5_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_, bn4_, bn5_;
};

class ShuffleNetV2 : public Module {
 public:
  ShuffleNetV2(const std::vector<int64_t>& out_channels, const std::vector<int64_t>& num_blocks,
               const ModelConfig& cfg) {
    nn::InitRng rng(cfg.seed);
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(cfg.in_channels, 24, 1, 1, 0, 1, false, rng));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(24));
    int64_t in = 24;
    for (size_t l = 0; l < 3; ++l) {
      auto layer = register_module("layer" + std::to_string(l + 1), std::make_shared<nn::Sequential>());
      layer->add(std::make_shared<ShuffleV2DownBlock>(in, out_channels[l], rng));
      for (int64_t i = 0; i < num_blocks[l]; ++i)
        last_[l] = layer->add(std::make_shared<ShuffleV2Block>(out_channels[l], rng));
      in = out_channels[l];
      layers_.push_back(layer);
    }
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(in, out_channels[3], 1, 1, 0, 1, false, rng));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_channels[3]));
    linear_ = register_module("linear", std::make_shared<nn::Linear>(out_channels[3], cfg.num_classes, true, rng));
    // ShuffleNetv2.py keeps PyTorch's default initialisation everywhere.
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = ops::relu((*bn1_)((*conv1_)(x)));
    if (!features_wanted()) {
      for (auto& l : layers_) out = (*l)(out);
      out = ops::relu((*bn2_)((*conv2_)(out)));
      return (*linear_)(detail::final_avg_pool(out, 4));
    }
    // ShuffleNetv2.py's is_feat: [f0 (stem), f1..f3 (stages; the last block's preact with preact), f4 (pooled)].
    emit_feature("feat0", out);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string name = "feat" + std::to_string(l + 1);
      if (preact_wanted()) {
        for (size_t i = 0; i + 1 < layers_[l]->size(); ++i) out = (*layers_[l])[i](out);
        Tensor pre;
        out = last_[l]->forward_preact(out, &pre);
        emit_feature(name, pre);
      } else {
        out = (*layers_[l])(out);
        emit_feature(name, out);
      }
    }
    out = ops::relu((*bn2_)((*conv2_)(out)));
    Tensor pooled = detail::final_avg_pool(out, 4);
    emit_feature("feat4", pooled);
    return (*linear_)(pooled);
  }
  std::vector<std::string> feature_names() const override { return {"feat0", "feat1", "feat2", "feat3", "feat4"}; }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
  std::shared_ptr<ShuffleV2Block> last_[3];  // each stage's last block (its pre-activation is a feature)
  std::shared_ptr<nn::Linear> linear_;
};

}  // namespace

std::shared_ptr<Module> make_shufflev2(const ModelConfig& cfg) {
  return std::make_shared<ShuffleNetV2>(std::vector<int64_t>{116, 232, 464, 1024}, std::vector<int64_t>{3, 7, 3}, cfg);
}

}  // namespace islkd::models
