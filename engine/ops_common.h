// Helpers shared by the op implementations in engine/ops_*.cpp (not part of the public API).
#pragma once
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace islkd::ops::detail {

// Checks that all defined tensors live on the same device and are float32 plain; names the op on failure.
void check_same_device(const char* op, std::initializer_list<const Tensor*> ts);
void check_shape(const char* op, const char* what, const Tensor& t, const Shape& expected);
void check_dim(const char* op, const char* what, const Tensor& t, int64_t dim);
// The channel block B of a CPU tensor in the activation layout nChw<B>c (8 or 16; cpu::activation_block() for
// tensors the ops make), else 0.
int64_t channel_block_of(const Tensor& t);
// A CPU tensor in any blocked layout, at the start of its storage (elementwise ops run over its whole buffer).
bool is_blocked_cpu(const Tensor& t);
// An uninitialised tensor with x's shape and blocked layout.
Tensor empty_like_blocked(const Tensor& x);

// Checks a pooling input and window (PyTorch's limits) and returns its shape (engine/ops_max_pool2d.cpp).
Pool2dShape pool_shape(const char* op, const Tensor& x, int64_t kernel, int64_t stride, int64_t pad);

}  // namespace islkd::ops::detail
