// Layer modules (Conv2d, BatchNorm2d, Linear, ReLU, pools, Sequential, Identity) over Module and the ops of
// engine/ops.h, with PyTorch's parameter names and initialisation, drawn from a seeded RNG so a seed fixes a model.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/module.h"
#include "kernels/common/batch_norm_sync.h"

namespace islkd::nn {

// Deterministic generator for weight initialisation (splitmix64 -> xoshiro256**; Box-Muller for normals).
// Own implementation rather than <random> distributions, whose output differs between standard libraries.
class InitRng {
 public:
  explicit InitRng(uint64_t seed);
  uint64_t next_u64();
  double uniform();                      // [0, 1)
  double uniform(double lo, double hi);  // [lo, hi)
  double normal(double mean, double std);

 private:
  uint64_t s_[4];
  bool have_spare_ = false;
  double spare_ = 0.0;
};

// Initialisers, PyTorch's semantics; fan_in = size(1) * receptive field, fan_out = size(0) * receptive field.
namespace init {
void fill(Tensor& t, float value);
void uniform(Tensor& t, double lo, double hi, InitRng& rng);
void normal(Tensor& t, double mean, double std, InitRng& rng);
// kaiming_normal_(mode='fan_out', nonlinearity='relu'): N(0, sqrt(2 / fan_out)).
void kaiming_normal_fan_out(Tensor& t, InitRng& rng);
// PyTorch's default for Conv/Linear weights: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void default_weight(Tensor& t, InitRng& rng);
int64_t fan_in(const Tensor& t);
int64_t fan_out(const Tensor& t);
}  // namespace init

class Conv2d : public Module {
 public:
  // PyTorch default init: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Models re-initialise as RepDistiller does.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding, int64_t groups,
         bool bias, InitRng& rng);
  Tensor forward(const Tensor& x) override;
  Tensor& weight() { return *weight_; }
  Tensor* bias() { return bias_; }  // nullptr when the conv has no bias
  int64_t in_channels, out_channels, kernel, stride, padding, groups;

  // Inference folding (fold_batch_norm below): in eval mode without autograd, forward convolves with these
  // instead of weight/bias. Dropped by train(true) and by clear_folded().
  void set_folded(Tensor weight, Tensor bias);
  void clear_folded();
  bool is_folded() const { return folded_weight_.defined(); }
  // True when x is the output of this conv's last folded forward (the folded BatchNorm2d's input check).
  bool produced(const Tensor& x) const;
  // The folded forward with what follows the conv in a frozen block fused into the one convolution call:
  // relu?(conv(x) + bias + residual) (residual optional). Only when can_fuse(): folded, eval mode, no autograd; a
  // model checks it (and that its BN is folded into this conv) and otherwise runs its layers one by one.
  bool can_fuse() const;
  Tensor forward_fused(const Tensor& x, bool relu, const Tensor& residual = Tensor());

 protected:
  void on_train(bool on) override;

 private:
  Tensor* weight_;
  Tensor* bias_ = nullptr;
  Tensor folded_weight_, folded_bias_;
  std::weak_ptr<TensorImpl> last_folded_output_;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, float eps = 1e-5f, float momentum = 0.1f);
  // Training: batch statistics, running stats updated with `momentum`, num_batches_tracked += 1. Eval: running stats.
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)), with the ReLU fused into the normalisation pass where the backend can (ops::batch_norm2d).
  Tensor forward_relu(const Tensor& x);
  Tensor& weight() { return *weight_; }
  Tensor& bias() { return *bias_; }
  Tensor& running_mean() { return *running_mean_; }
  Tensor& running_var() { return *running_var_; }
  int64_t num_batches_tracked() const { return *num_batches_tracked_; }
  int64_t channels;
  float eps, momentum;
  // Set by fold_batch_norm: in eval mode without autograd this layer is the identity on `conv`'s output.
  Conv2d* folded_into = nullptr;
  // --sync-bn (set_batch_norm_sync): training-mode statistics over every replica's batch (ops::batch_norm2d).
  std::shared_ptr<BatchNormSync> sync;

 protected:
  void on_train(bool on) override;

 private:
  Tensor *weight_, *bias_, *running_mean_, *running_var_;
  int64_t* num_batches_tracked_;
  Tensor run(const Tensor& x, bool relu);  // forward / forward_relu
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, InitRng& rng);
  Tensor forward(const Tensor& x) override;  // flattens N x ... inputs to N x in_features
  Tensor& weight() { return *weight_; }
  Tensor* bias() { return bias_; }
  int64_t in_features, out_features;

 private:
  Tensor* weight_;
  Tensor* bias_ = nullptr;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t padding = 0) : kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  int64_t kernel, stride, padding;
};

// count_include_pad=True, as PyTorch's default.
class AvgPool2d : public Module {
 public:
  AvgPool2d(int64_t kernel, int64_t stride, int64_t padding = 0) : kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  int64_t kernel, stride, padding;
};

// Children named "0", "1", ... in insertion order, like torch.nn.Sequential, so state-dict names match.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  template <typename M>
  std::shared_ptr<M> add(std::shared_ptr<M> m) {
    register_module(std::to_string(children().size()), m);
    return m;
  }
  size_t size() const { return children().size(); }
  Module& operator[](size_t i) const { return *children().at(i).second; }
  Tensor forward(const Tensor& x) override;
};

// Folds every eval-mode BatchNorm2d into the Conv2d that feeds it, for a frozen model's inference (a KD teacher):
// w' = w * gamma / sqrt(var + eps) per output channel, b' = beta + (b - mean) * gamma / sqrt(var + eps), and the BN
// becomes the identity, which saves one read+write pass per conv. Pairs are a Conv2d registered directly before a
// BatchNorm2d of its width among the same parent's children (conv1/bn1, downsample.0/.1, WRN's conv1/bn2); at run
// time each folded BN checks that its input is its conv's output and throws otherwise. Applies only in eval mode
// under no-grad; call it after the weights are final and after Module::to (train(true) or unfold_batch_norm undo
// it). Every Conv2d of the model (folded or not) then runs through ops::conv2d_inference, so activations stay in
// oneDNN's blocked layout between convolutions on the CPU. Returns the number of folded pairs.
int fold_batch_norm(Module& model);
void unfold_batch_norm(Module& model);

// Sets (or, with null, clears) the replica synchronisation of every BatchNorm2d in the model (SyncBatchNorm's
// convert_sync_batchnorm). Returns the number of layers.
int set_batch_norm_sync(Module& model, const std::shared_ptr<BatchNormSync>& sync);

}  // namespace islkd::nn
