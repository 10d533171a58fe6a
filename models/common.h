// Helpers shared by the model files (not part of the public API): RepDistiller's re-initialisation passes
// and the final pooling.
#pragma once
#include <functional>

#include "engine/nn.h"
#include "engine/ops.h"
#include "models/registry.h"

namespace islkd::models::detail {

// Visits m and every descendant (pre-order).
void for_each_module(Module& m, const std::function<void(Module&)>& f);
// `for m in self.modules(): if Conv2d: normal(0, sqrt(2 / (k*k*out_channels)))` (= kaiming_normal_ fan_out),
// optionally zeroing conv biases.
void init_convs_fan_out(Module& m, nn::InitRng& rng, bool zero_bias);
// Re-initialises every Linear: weight N(0, weight_std) unless weight_std < 0 (keep PyTorch's default), bias 0.
void init_linears(Module& m, nn::InitRng& rng, double weight_std);

// RepDistiller's final `avg_pool2d(x, k)` before the classifier. At the CIFAR input size the map is exactly
// k x k and this is the same as global average pooling; for smaller inputs (28x28 Fashion-MNIST, a 7x7 map where
// PyTorch's fixed window would fail) we average the whole map. Larger maps keep the k x k window.
Tensor final_avg_pool(const Tensor& x, int64_t k);

}  // namespace islkd::models::detail
