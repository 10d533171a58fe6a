// Elementwise and shape ops (relu, add, scale, reshape, flatten), the shared boundary checks and the blocked
// activation helpers.
#include <atomic>

#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

namespace detail {
void check_same_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    if (!first) first = t;
    ISLKD_CHECK(t->device() == first->device(), op, ": tensors on different devices (", device_name(first->device()),
                " and ", device_name(t->device()), "); move them explicitly with .to()");
  }
}
void check_shape(const char* op, const char* what, const Tensor& t, const Shape& expected) {
  ISLKD_CHECK(t.defined(), op, ": ", what, " is undefined");
  ISLKD_CHECK(t.shape() == expected, op, ": ", what, " has shape ", shape_str(t.shape()), ", expected ",
              shape_str(expected));
}
void check_dim(const char* op, const char* what, const Tensor& t, int64_t dim) {
  ISLKD_CHECK(t.defined(), op, ": ", what, " is undefined");
  ISLKD_CHECK(t.dim() == dim, op, ": ", what, " must have ", dim, " dimensions, got shape ", shape_str(t.shape()));
}

bool is_blocked_cpu(const Tensor& t) {
  return t.defined() && t.layout() == Layout::DnnlBlocked && !t.is_cuda() && t.impl()->offset_bytes == 0;
}
int64_t channel_block_of(const Tensor& t) {
  if (!is_blocked_cpu(t) || t.dtype() != DType::F32) return 0;
  return cpu::channel_block(*static_cast<const cpu::BlockedLayout*>(t.impl()->layout_desc.get()));
}
Tensor empty_like_blocked(const Tensor& x) { return Tensor::empty_blocked(x.shape(), x.impl()->layout_desc); }
}  // namespace detail

namespace {
std::atomic<bool> g_cpu_blocked_activations{false};
}  // namespace
void set_cpu_blocked_activations(bool on) { g_cpu_blocked_activations = on; }
bool cpu_blocked_activations() { return g_cpu_blocked_activations; }

using namespace detail;

namespace {
// Elementwise ops on oneDNN blocked activations: the op runs over the whole buffer, padding included (zero
// padding stays zero under relu and add, and so do their gradients); the result keeps the layout.
float* blocked_ptr(const Tensor& t) { return static_cast<float*>(t.raw_data()); }
int64_t blocked_count(const Tensor& t) { return static_cast<int64_t>(t.storage()->bytes() / sizeof(float)); }
}  // namespace

Tensor relu(const Tensor& x_in) {
  if (is_blocked_cpu(x_in)) {
    Tensor y = empty_like_blocked(x_in);
    cpu::relu_forward(blocked_ptr(x_in), blocked_ptr(y), blocked_count(x_in));
    if (needs_grad({&x_in})) {
      Tensor yd = y.detach();
      record("relu", {x_in}, {y}, [x_in, yd](const std::vector<Tensor>& g) {
        const Tensor dy = g[0].to_layout_of(yd);
        Tensor dx = empty_like_blocked(yd);
        cpu::relu_backward(blocked_ptr(yd), blocked_ptr(dy), blocked_ptr(dx), blocked_count(yd));
        accumulate_grad(x_in, dx);
      });
    }
    return y;
  }
  Tensor x = x_in.to_plain();
  Tensor y = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda())
    cuda::relu_forward(x.data(), y.data(), x.numel());
  else
    cpu::relu_forward(x.data(), y.data(), x.numel());
  if (needs_grad({&x})) {
    Tensor yd = y.detach();
    record("relu", {x}, {y}, [x, yd](const std::vector<Tensor>& g) {
      Tensor dx = Tensor::empty(x.shape(), x.device());
      if (x.is_cuda())
        cuda::relu_backward(yd.data(), g[0].data(), dx.data(), x.numel());
      else
        cpu::relu_backward(yd.data(), g[0].data(), dx.data(), x.numel());
      accumulate_grad(x, dx);
    });
  }
  return y;
}

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  if (is_blocked_cpu(a_in) && is_blocked_cpu(b_in) && a_in.shape() == b_in.shape() &&
      a_in.storage()->bytes() == b_in.storage()->bytes() && same_layout(a_in, b_in)) {
    Tensor y = empty_like_blocked(a_in);
    cpu::add(blocked_ptr(a_in), blocked_ptr(b_in), blocked_ptr(y), blocked_count(a_in));
    if (needs_grad({&a_in, &b_in})) {
      record("add", {a_in, b_in}, {y}, [a_in, b_in](const std::vector<Tensor>& g) {
        if (a_in.requires_grad()) accumulate_grad(a_in, g[0]);
        if (b_in.requires_grad()) accumulate_grad(b_in, g[0]);
      });
    }
    return y;
  }
  Tensor a = a_in.to_plain(), b = b_in.to_plain();
  check_same_device("add", {&a, &b});
  check_shape("add", "b", b, a.shape());
  Tensor y = Tensor::empty(a.shape(), a.device());
  if (a.is_cuda())
    cuda::add(a.data(), b.data(), y.data(), a.numel());
  else
    cpu::add(a.data(), b.data(), y.data(), a.numel());
  if (needs_grad({&a, &b})) {
    record("add", {a, b}, {y}, [a, b](const std::vector<Tensor>& g) {
      if (a.requires_grad()) accumulate_grad(a, g[0]);
      if (b.requires_grad()) accumulate_grad(b, g[0]);
    });
  }
  return y;
}

Tensor scale(const Tensor& x_in, float s) {
  Tensor x = x_in.to_plain();
  Tensor y = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda())
    cuda::scale(x.data(), s, y.data(), x.numel());
  else
    cpu::scale(x.data(), s, y.data(), x.numel());
  if (needs_grad({&x})) {
    record("scale", {x}, {y}, [x, s](const std::vector<Tensor>& g) {
      Tensor dx = Tensor::empty(x.shape(), x.device());
      if (x.is_cuda())
        cuda::scale(g[0].data(), s, dx.data(), x.numel());
      else
        cpu::scale(g[0].data(), s, dx.data(), x.numel());
      accumulate_grad(x, dx);
    });
  }
  return y;
}

Tensor reshape(const Tensor& x_in, const Shape& shape) {
  Tensor x = x_in.to_plain();
  Shape s = shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      ISLKD_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    ISLKD_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot reshape ", shape_str(x.shape()), " to ",
                shape_str(shape));
    s[static_cast<size_t>(infer)] = x.numel() / known;
  }
  ISLKD_CHECK(shape_numel(s) == x.numel(), "reshape: cannot reshape ", shape_str(x.shape()), " to ", shape_str(shape));
  Tensor y = x.view(s);
  if (needs_grad({&x})) {
    record("reshape", {x}, {y}, [x](const std::vector<Tensor>& g) { accumulate_grad(x, g[0].view(x.shape())); });
  }
  return y;
}

Tensor flatten(const Tensor& x) {
  ISLKD_CHECK(x.dim() >= 1, "flatten: needs at least one dimension, got ", shape_str(x.shape()));
  return reshape(x, {x.size(0), -1});
}

}  // namespace islkd::ops
