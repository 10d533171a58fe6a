// Tensor: float32 (or int32 for labels) N-d array with shared storage, a device tag and a memory-layout tag,
// plus the autograd fields (requires_grad, grad, the node that produced it).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/common/error.h"

namespace islkd {

enum class Device : uint8_t { CPU = 0, CUDA = 1 };
enum class DType : uint8_t { F32 = 0, I32 = 1 };
// Plain = contiguous NCHW (row-major over the logical shape). DnnlBlocked = a oneDNN blocked format kept by the
// CPU backend between ops; `to_plain()` converts. Ops that need plain memory call `contiguous_plain()` on inputs.
enum class Layout : uint8_t { Plain = 0, DnnlBlocked = 1 };

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
const char* device_name(Device d);
Device parse_device(const std::string& s);  // "cpu" | "cuda"

// Host blocks freed by Storage are kept for reuse by later allocations of the same size; this returns them to
// the system (e.g. before a phase that needs memory for something else).
void release_idle_host_memory();

// A block of memory on one device. Freed through the device's allocator when the last owner goes.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  // Allocation (uninitialised / zeros / filled).
  static Tensor empty(const Shape& shape, Device device = Device::CPU, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, Device device = Device::CPU, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, float value, Device device = Device::CPU);
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape, Device device = Device::CPU);
  static Tensor from_labels(const std::vector<int32_t>& v, Device device = Device::CPU);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  Device device() const;
  DType dtype() const;
  Layout layout() const;
  bool is_cuda() const { return device() == Device::CUDA; }

  float* data() const;       // F32 only; plain layout only
  int32_t* data_i32() const;  // I32 only
  void* raw_data() const;
  const std::shared_ptr<Storage>& storage() const;

  // Copies (never silent: the caller asks for them).
  Tensor to(Device device) const;  // same device -> shares storage
  Tensor clone() const;            // deep copy, same device, no autograd history
  std::vector<float> to_vector() const;    // F32 -> host vector (copies from the device when needed)
  std::vector<int32_t> to_labels() const;  // I32 -> host vector
  void copy_from(const Tensor& src);       // same shape/dtype, any devices; no autograd
  float item() const;                      // single-element F32

  // Views sharing storage (no autograd; use ops::reshape for the autograd-aware version).
  Tensor view(const Shape& shape) const;
  Tensor detach() const;  // same storage, no history, requires_grad = false

  // Autograd.
  bool requires_grad() const;
  const Tensor& set_requires_grad(bool r) const;
  bool is_leaf() const;
  Tensor grad() const;  // undefined when no gradient was accumulated
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the gradient (next accumulation starts fresh)
  void backward() const;  // reverse pass from this scalar (d self = 1) through the whole recorded graph
  // The same pass, calling `on_leaf_ready(leaf)` for every leaf that requires grad (a parameter) as soon as the last
  // node that accumulates into it has run: its gradient is final from then on (data-parallel training starts the
  // all-reduce of a bucket whose gradients are all final while the rest of the backward still runs). Leaves the pass
  // never reaches are not reported.
  void backward(const std::function<void(const Tensor& leaf)>& on_leaf_ready) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Layout: DnnlBlocked tensors carry an opaque backend descriptor; to_plain() converts (identity for Plain) and
  // is differentiable (the gradient goes back into the blocked layout).
  Tensor to_plain() const;
  // A CPU tensor of `shape` in the blocked layout `layout_desc` (a cpu::BlockedLayout), uninitialised.
  static Tensor empty_blocked(const Shape& shape, std::shared_ptr<const void> layout_desc);
  // This tensor's values in ref's layout (itself when they already agree); same shape; no autograd.
  Tensor to_layout_of(const Tensor& ref) const;
  // This CPU tensor's values in the blocked layout `layout_desc` (converting from any layout); no autograd.
  Tensor to_blocked(const std::shared_ptr<void>& layout_desc) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset_bytes = 0;
  Shape shape;
  DType dtype = DType::F32;
  Layout layout = Layout::Plain;
  std::shared_ptr<void> layout_desc;  // backend-specific description of a blocked layout
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;  // null for leaves and for tensors outside the graph
};

// True when a and b have the same memory layout (both plain, or the same blocked layout).
bool same_layout(const Tensor& a, const Tensor& b);

// Accumulates g into t's gradient (allocating it on first use). Used by backward functions. When t has no gradient
// yet and nothing but the caller's handle refers to g (a backward's local result), g's storage becomes the
// gradient without a copy: the caller must not write to g afterwards.
void accumulate_grad(const Tensor& t, const Tensor& g);

}  // namespace islkd
