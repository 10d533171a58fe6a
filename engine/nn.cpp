// Layer modules: parameter registration with PyTorch names, default initialisation, and forward via engine/ops.
#include "engine/nn.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace islkd::nn {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

InitRng::InitRng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t InitRng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double InitRng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
double InitRng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

double InitRng::normal(double mean, double std) {
  if (have_spare_) {
    have_spare_ = false;
    return mean + std * spare_;
  }
  double u1;
  do u1 = uniform();
  while (u1 <= 0.0);
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * M_PI * u2);
  have_spare_ = true;
  return mean + std * r * std::cos(2.0 * M_PI * u2);
}

namespace init {

namespace {
// Parameters are created on the CPU and filled in place; after .to(CUDA) a host vector is filled and copied in.
template <typename F>
void fill_with(Tensor& t, F&& f) {
  if (t.device() == Device::CPU && t.layout() == Layout::Plain) {
    float* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(f());
    return;
  }
  std::vector<float> v(t.numel());
  for (auto& x : v) x = static_cast<float>(f());
  t.copy_from(Tensor::from_vector(v, t.shape()));
}
int64_t receptive(const Tensor& t) {
  int64_t r = 1;
  for (int64_t d = 2; d < t.dim(); ++d) r *= t.size(d);
  return r;
}
}  // namespace

int64_t fan_in(const Tensor& t) { return (t.dim() > 1 ? t.size(1) : 1) * receptive(t); }
int64_t fan_out(const Tensor& t) { return t.size(0) * receptive(t); }

void fill(Tensor& t, float value) {
  fill_with(t, [&] { return value; });
}
void uniform(Tensor& t, double lo, double hi, InitRng& rng) {
  fill_with(t, [&] { return rng.uniform(lo, hi); });
}
void normal(Tensor& t, double mean, double std, InitRng& rng) {
  fill_with(t, [&] { return rng.normal(mean, std); });
}
void kaiming_normal_fan_out(Tensor& t, InitRng& rng) { normal(t, 0.0, std::sqrt(2.0 / fan_out(t)), rng); }
void default_weight(Tensor& t, InitRng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in(t)));
  uniform(t, -bound, bound, rng);
}

}  // namespace init

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
               int64_t groups, bool bias, InitRng& rng)
    : in_channels(in_channels), out_channels(out_channels), kernel(kernel), stride(stride), padding(padding),
      groups(groups) {
  ISLKD_CHECK(groups > 0 && in_channels % groups == 0 && out_channels % groups == 0, "Conv2d: channels ", in_channels,
              " -> ", out_channels, " are not divisible by groups=", groups);
  weight_ = &register_parameter("weight", Tensor::zeros({out_channels, in_channels / groups, kernel, kernel}));
  init::default_weight(*weight_, rng);
  if (bias) {
    bias_ = &register_parameter("bias", Tensor::zeros({out_channels}));
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(*weight_)));
    init::uniform(*bias_, -bound, bound, rng);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  if (folded_weight_.defined() && !is_training() && !grad_enabled()) {
    Tensor y = ops::conv2d_inference(x, folded_weight_, folded_bias_, stride, padding, groups);
    last_folded_output_ = y.impl_ptr();
    return y;
  }
  return ops::conv2d(x, *weight_, bias_ ? *bias_ : Tensor(), stride, padding, groups);
}

bool Conv2d::can_fuse() const { return folded_weight_.defined() && !is_training() && !grad_enabled(); }

Tensor Conv2d::forward_fused(const Tensor& x, bool relu, const Tensor& residual) {
  ISLKD_CHECK(can_fuse(), "Conv2d::forward_fused: needs a folded conv in eval mode without autograd "
                          "(nn::fold_batch_norm, eval(), NoGradGuard)");
  Tensor y = ops::conv2d_inference(x, folded_weight_, folded_bias_, stride, padding, groups, relu, residual);
  last_folded_output_ = y.impl_ptr();
  return y;
}

void Conv2d::set_folded(Tensor weight, Tensor bias) {
  ISLKD_CHECK(weight.shape() == weight_->shape() && (!bias.defined() || bias.numel() == out_channels),
              "Conv2d::set_folded: weight ", shape_str(weight.shape()), " / bias must match the layer's weight ",
              shape_str(weight_->shape()), " and ", out_channels, " channels");
  folded_weight_ = std::move(weight);
  folded_bias_ = std::move(bias);
}

void Conv2d::clear_folded() {
  folded_weight_ = Tensor();
  folded_bias_ = Tensor();
  last_folded_output_.reset();
}

bool Conv2d::produced(const Tensor& x) const {
  auto last = last_folded_output_.lock();
  return last && last.get() == x.impl();
}

void Conv2d::on_train(bool on) {
  if (on) clear_folded();
}

BatchNorm2d::BatchNorm2d(int64_t channels, float eps, float momentum) : channels(channels), eps(eps), momentum(momentum) {
  weight_ = &register_parameter("weight", Tensor::full({channels}, 1.0f));
  bias_ = &register_parameter("bias", Tensor::zeros({channels}));
  running_mean_ = &register_buffer("running_mean", Tensor::zeros({channels}));
  running_var_ = &register_buffer("running_var", Tensor::full({channels}, 1.0f));
  num_batches_tracked_ = &register_counter("num_batches_tracked", 0);
}

Tensor BatchNorm2d::run(const Tensor& x, bool relu) {
  const bool training = is_training();
  if (folded_into && !training && !grad_enabled()) {
    ISLKD_CHECK(folded_into->produced(x), "BatchNorm2d: folded into the Conv2d before it (fold_batch_norm), but its "
                                          "input is not that convolution's output; call unfold_batch_norm on this "
                                          "model (its forward does not apply BN right after the conv)");
    return relu ? ops::relu(x) : x;
  }
  Tensor y = ops::batch_norm2d(x, *weight_, *bias_, *running_mean_, *running_var_, training, momentum, eps, relu,
                               training ? sync : nullptr);
  if (training) ++*num_batches_tracked_;
  return y;
}

Tensor BatchNorm2d::forward(const Tensor& x) { return run(x, false); }
Tensor BatchNorm2d::forward_relu(const Tensor& x) { return run(x, true); }

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, InitRng& rng)
    : in_features(in_features), out_features(out_features) {
  weight_ = &register_parameter("weight", Tensor::zeros({out_features, in_features}));
  init::default_weight(*weight_, rng);
  if (bias) {
    bias_ = &register_parameter("bias", Tensor::zeros({out_features}));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    init::uniform(*bias_, -bound, bound, rng);
  }
}

void BatchNorm2d::on_train(bool on) {
  if (on) folded_into = nullptr;
}

Tensor Linear::forward(const Tensor& x) {
  Tensor in = x.dim() == 2 ? x : ops::flatten(x);
  ISLKD_CHECK(in.size(1) == in_features, "Linear: input has ", in.size(1), " features (shape ", shape_str(x.shape()),
              "), the layer expects ", in_features);
  return ops::linear(in, *weight_, bias_ ? *bias_ : Tensor());
}

Tensor ReLU::forward(const Tensor& x) { return ops::relu(x); }
Tensor MaxPool2d::forward(const Tensor& x) { return ops::max_pool2d(x, kernel, stride, padding); }
Tensor AvgPool2d::forward(const Tensor& x) { return ops::avg_pool2d(x, kernel, stride, padding); }

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) add(m);
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& [name, m] : children()) y = m->forward(y);
  return y;
}

namespace {
void fold_children(Module& m, int& count) {
  const auto& kids = m.children();
  for (size_t i = 0; i + 1 < kids.size(); ++i) {
    auto* conv = dynamic_cast<Conv2d*>(kids[i].second.get());
    auto* bn = dynamic_cast<BatchNorm2d*>(kids[i + 1].second.get());
    if (!conv || !bn || bn->channels != conv->out_channels) continue;
    // Folded in double on the host, then moved to the layer's device.
    const std::vector<float> w = conv->weight().to_vector(), g = bn->weight().to_vector(),
                             beta = bn->bias().to_vector(), mean = bn->running_mean().to_vector(),
                             var = bn->running_var().to_vector();
    const std::vector<float> b = conv->bias() ? conv->bias()->to_vector() : std::vector<float>(g.size(), 0.0f);
    const size_t K = g.size(), per = w.size() / K;
    std::vector<float> fw(w.size()), fb(K);
    for (size_t k = 0; k < K; ++k) {
      const double s = double(g[k]) / std::sqrt(double(var[k]) + double(bn->eps));
      for (size_t j = 0; j < per; ++j) fw[k * per + j] = static_cast<float>(double(w[k * per + j]) * s);
      fb[k] = static_cast<float>(double(beta[k]) + (double(b[k]) - double(mean[k])) * s);
    }
    const Device d = conv->weight().device();
    conv->set_folded(Tensor::from_vector(fw, conv->weight().shape()).to(d),
                     Tensor::from_vector(fb, {static_cast<int64_t>(K)}).to(d));
    bn->folded_into = conv;
    ++count;
    ++i;  // the BN is consumed
  }
  // Convs without a BN after them run their own weights through the same inference path (blocked layouts).
  for (const auto& kid : kids) {
    auto* conv = dynamic_cast<Conv2d*>(kid.second.get());
    if (conv && !conv->is_folded()) conv->set_folded(conv->weight(), conv->bias() ? *conv->bias() : Tensor());
  }
  for (const auto& kid : kids) fold_children(*kid.second, count);
}

void unfold_all(Module& m) {
  if (auto* conv = dynamic_cast<Conv2d*>(&m)) conv->clear_folded();
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) bn->folded_into = nullptr;
  for (const auto& kid : m.children()) unfold_all(*kid.second);
}
}  // namespace

int fold_batch_norm(Module& model) {
  ISLKD_CHECK(!model.is_training(), "fold_batch_norm: the model must be in eval mode (call eval() first)");
  unfold_all(model);
  int count = 0;
  fold_children(model, count);
  return count;
}

void unfold_batch_norm(Module& model) { unfold_all(model); }

int set_batch_norm_sync(Module& model, const std::shared_ptr<BatchNormSync>& sync) {
  int count = 0;
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&model)) bn->sync = sync, ++count;
  for (const auto& kid : model.children()) count += set_batch_norm_sync(*kid.second, sync);
  return count;
}

}  // namespace islkd::nn
