// Shared model helpers: module-tree walks for RepDistiller's initialisation, and the final pooling.
#include "models/common.h"

namespace islkd::models::detail {

void for_each_module(Module& m, const std::function<void(Module&)>& f) {
  f(m);
  for (auto& [name, child] : m.children()) for_each_module(*child, f);
}

void init_convs_fan_out(Module& m, nn::InitRng& rng, bool zero_bias) {
  for_each_module(m, [&](Module& x) {
    if (auto* conv = dynamic_cast<nn::Conv2d*>(&x)) {
      nn::init::kaiming_normal_fan_out(conv->weight(), rng);
      if (zero_bias && conv->bias()) nn::init::fill(*conv->bias(), 0.0f);
    }
  });
}

void init_linears(Module& m, nn::InitRng& rng, double weight_std) {
  for_each_module(m, [&](Module& x) {
    if (auto* fc = dynamic_cast<nn::Linear*>(&x)) {
      if (weight_std >= 0) nn::init::normal(fc->weight(), 0.0, weight_std, rng);
      if (fc->bias()) nn::init::fill(*fc->bias(), 0.0f);
    }
  });
}

Tensor final_avg_pool(const Tensor& x, int64_t k) {
  ISLKD_CHECK(x.dim() == 4, "final_avg_pool: expected an N x C x H x W map, got ", shape_str(x.shape()));
  if (x.size(2) <= k && x.size(3) <= k) return ops::global_avg_pool(x);
  return ops::flatten(ops::avg_pool2d(x, k, k));
}

}  // namespace islkd::models::detail
