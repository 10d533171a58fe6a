// VGG with BatchNorm for CIFAR (RepDistiller's vgg8/11/13/16/19 = vgg*_bn): five conv blocks (the last ReLU of
// each block applied in forward), 2x2 max pools between them, global average pool, `classifier`. Names as vgg.py.
#include "models/common.h"

namespace islkd::models {

namespace {

class VGG : public Module {
 public:
  VGG(const std::vector<std::vector<int64_t>>& cfg, const ModelConfig& config) {
    nn::InitRng rng(config.seed);
    int64_t in = config.in_channels;
    for (size_t b = 0; b < 5; ++b) {
      auto block = register_module("block" + std::to_string(b), std::make_shared<nn::Sequential>());
      // conv, bn, relu per entry; vgg.py drops the block's final ReLU (`layers[:-1]`).
      for (size_t i = 0; i < cfg[b].size(); ++i) {
        block->add(std::make_shared<nn::Conv2d>(in, cfg[b][i], 3, 1, 1, 1, true, rng));
        block->add(std::make_shared<nn::BatchNorm2d>(cfg[b][i]));
        if (i + 1 < cfg[b].size()) block->add(std::make_shared<nn::ReLU>());
        in = cfg[b][i];
      }
      blocks_.push_back(block);
    }
    classifier_ = register_module("classifier", std::make_shared<nn::Linear>(512, config.num_classes, true, rng));
    // vgg.py: conv N(0, sqrt(2/(k*k*out))) with zero bias, BN 1/0, Linear N(0, 0.01) with zero bias.
    detail::init_convs_fan_out(*this, rng, true);
    detail::init_linears(*this, rng, 0.01);
  }
  Tensor forward(const Tensor& x) override {
    const int64_t h = x.size(2);
    Tensor out = x;
    const bool feats = features_wanted(), preact = preact_wanted();
    for (size_t b = 0; b < 5; ++b) {
      // vgg.py's is_feat: f0 = relu(block0), f1..f4 = the blocks' outputs (before their ReLU with preact; f0 has
      // no pre-activation variant there), f5 = the pooled vector. Taken before each max pool.
      Tensor pre = (*blocks_[b])(out);
      if (feats && preact && b > 0) emit_feature("feat" + std::to_string(b), pre);
      out = ops::relu(pre);
      if (feats && !(preact && b > 0)) emit_feature("feat" + std::to_string(b), out);
      // pool0..pool2 always; pool3 only for 64x64 inputs; pool4 is the adaptive (global) average pool.
      if (b < 3 || (b == 3 && h == 64)) out = ops::max_pool2d(out, 2, 2);
    }
    Tensor pooled = ops::global_avg_pool(out);
    if (feats) emit_feature("feat5", pooled);
    return (*classifier_)(pooled);
  }
  std::vector<std::string> feature_names() const override {
    return {"feat0", "feat1", "feat2", "feat3", "feat4", "feat5"};
  }

 private:
  std::vector<std::shared_ptr<nn::Sequential>> blocks_;
  std::shared_ptr<nn::Linear> classifier_;
};

}  // namespace

std::shared_ptr<Module> make_vgg(const ModelConfig& cfg, int depth) {
  static const std::vector<std::vector<int64_t>> S = {{64}, {128}, {256}, {512}, {512}};
  static const std::vector<std::vector<int64_t>> A = {{64}, {128}, {256, 256}, {512, 512}, {512, 512}};
  static const std::vector<std::vector<int64_t>> B = {{64, 64}, {128, 128}, {256, 256}, {512, 512}, {512, 512}};
  static const std::vector<std::vector<int64_t>> D = {
      {64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  static const std::vector<std::vector<int64_t>> E = {
      {64, 64}, {128, 128}, {256, 256, 256, 256}, {512, 512, 512, 512}, {512, 512, 512, 512}};
  switch (depth) {
    case 8: return std::make_shared<VGG>(S, cfg);
    case 11: return std::make_shared<VGG>(A, cfg);
    case 13: return std::make_shared<VGG>(B, cfg);
    case 16: return std::make_shared<VGG>(D, cfg);
    case 19: return std::make_shared<VGG>(E, cfg);
  }
  ISLKD_FAIL("VGG: no configuration for depth ", depth, " (8, 11, 13, 16, 19)");
}

}  // namespace islkd::models
