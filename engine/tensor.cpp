// Tensor storage, views, device copies and gradient accumulation.
#include "engine/tensor.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/autograd.h"
#include "kernels/common/checked.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

namespace {
// A shape in an error message, formatted only when the message is built (checked_mul's parts are lazy).
struct ShapeText {
  const Shape& s;
};
std::ostream& operator<<(std::ostream& os, const ShapeText& t) { return os << shape_str(t.s); }
}  // namespace

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    ISLKD_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
    n = checked_mul(n, d, "the element count of shape ", ShapeText{s});
  }
  return n;
}

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  ISLKD_FAIL("unknown device '", s, "' (expected cpu or cuda)");
}

namespace {

// glibc gives freed memory back to the kernel (top-of-heap trimming above 128 KiB, munmap of mmapped chunks), so
// the next step's activations fault in page by page again. Keeping freed memory in the process (no trimming,
// blocks up to 32 MiB from the heap, heap grown 64 MiB at a time) cut the page faults of a resnet8 training run
// 2.6x (333k -> 130k, `perf stat -e page-faults`) and its CPU time by 10%; it also covers oneDNN's scratchpads,
// which do not come through this cache. The peak resident memory stays what the peak step needs.
// ISLKD_MALLOC_TUNE=0 leaves glibc's defaults. Applied at program start (below), before the data is read.
void tune_malloc() {
#if defined(__GLIBC__)
  if (const char* e = std::getenv("ISLKD_MALLOC_TUNE"); e && std::string(e) == "0") return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

// Host blocks are kept on per-size free lists instead of going back to malloc: a training step allocates the same
// few hundred activation and gradient sizes every step, and large blocks from malloc are fresh mmaps that cost a
// page fault per 4 KiB on first touch (measured: more than the elementwise ops themselves). Exact-size reuse
// only (a step's sizes repeat exactly), with a cap on what is kept idle. Contents of a reused block are
// unspecified, like fresh malloc memory, so results do not depend on reuse.
class HostBlockCache {
 public:
  static HostBlockCache& get() {
    static HostBlockCache* c = new HostBlockCache;  // never destroyed: storages may be freed during exit
    return *c;
  }
  void* allocate(size_t alloc) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(alloc);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        idle_bytes_ -= alloc;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, alloc);
    if (!p) {
      release_idle();  // give the idle blocks back and retry once before failing
      p = std::aligned_alloc(64, alloc);
    }
    return p;
  }
  void release(void* p, size_t alloc) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_bytes_ + alloc <= max_idle_bytes_) {
        free_[alloc].push_back(p);
        idle_bytes_ += alloc;
        return;
      }
    }
    std::free(p);
  }
  void release_idle() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, list] : free_)
      for (void* p : list) std::free(p);
    free_.clear();
    idle_bytes_ = 0;
  }

 private:
  // ISLKD_HOST_CACHE_BYTES caps the idle bytes kept. Off by default (0) until the resume-determinism tests have
  // been shown to pass with reuse on (a kernel reading uninitialised memory would only show up with reuse), and
  // always off under the sanitizer so ASan sees every use after free.
  HostBlockCache() {
#if !defined(ISLKD_SANITIZE)
    if (const char* e = std::getenv("ISLKD_HOST_CACHE_BYTES")) max_idle_bytes_ = std::strtoull(e, nullptr, 10);
#endif
  }
  size_t max_idle_bytes_ = 0;
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t idle_bytes_ = 0;
};

#if !defined(ISLKD_SANITIZE)
const bool g_malloc_tuned = (tune_malloc(), true);
#endif

size_t rounded_bytes(size_t bytes) { return bytes == 0 ? 64 : (bytes + 63) / 64 * 64; }

}  // namespace

void release_idle_host_memory() { HostBlockCache::get().release_idle(); }

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  const size_t alloc = rounded_bytes(bytes);
  if (device == Device::CPU) {
    data_ = HostBlockCache::get().allocate(alloc);
    if (!data_) ISLKD_FAIL("out of host memory allocating ", bytes, " bytes");
  } else {
    data_ = cuda::device_malloc(alloc);
  }
}

Storage::~Storage() {
  if (device_ == Device::CPU)
    HostBlockCache::get().release(data_, rounded_bytes(bytes_));
  else
    cuda::device_free(data_);
}

static size_t dtype_size(DType) { return 4; }

Tensor Tensor::empty(const Shape& shape, Device device, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  const int64_t bytes = checked_mul(shape_numel(shape), static_cast<int64_t>(dtype_size(dtype)),
                                    "the byte size of a tensor of shape ", ShapeText{shape});
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(bytes), device);
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, Device device, DType dtype) {
  Tensor t = empty(shape, device, dtype);
  if (device == Device::CPU)
    std::memset(t.raw_data(), 0, static_cast<size_t>(t.numel()) * 4);
  else
    cuda::fill(static_cast<float*>(t.raw_data()), 0.0f, t.numel());  // 0.0f is all-zero bits for int32 too
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, device);
  if (device == Device::CPU)
    cpu::fill(t.data(), value, t.numel());
  else
    cuda::fill(t.data(), value, t.numel());
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& shape, Device device) {
  ISLKD_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "from_vector: ", v.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, device);
  if (device == Device::CPU)
    std::memcpy(t.data(), v.data(), v.size() * 4);
  else
    cuda::memcpy_h2d(t.data(), v.data(), v.size() * 4);
  return t;
}

Tensor Tensor::from_labels(const std::vector<int32_t>& v, Device device) {
  Tensor t = empty({static_cast<int64_t>(v.size())}, device, DType::I32);
  if (device == Device::CPU)
    std::memcpy(t.raw_data(), v.data(), v.size() * 4);
  else
    cuda::memcpy_h2d(t.raw_data(), v.data(), v.size() * 4);
  return t;
}

const Shape& Tensor::shape() const {
  ISLKD_CHECK(impl_, "use of an undefined tensor");
  return impl_->shape;
}
int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  ISLKD_CHECK(d >= 0 && d < n, "dimension ", d, " out of range for shape ", shape_str(shape()));
  return shape()[static_cast<size_t>(d)];
}
int64_t Tensor::numel() const { return shape_numel(shape()); }
Device Tensor::device() const { return impl_->storage->device(); }
DType Tensor::dtype() const { return impl_->dtype; }
Layout Tensor::layout() const { return impl_->layout; }
void* Tensor::raw_data() const {
  return static_cast<char*>(impl_->storage->data()) + impl_->offset_bytes;
}
float* Tensor::data() const {
  ISLKD_CHECK(impl_, "data() of an undefined tensor");
  ISLKD_CHECK(impl_->dtype == DType::F32, "data(): tensor is not float32");
  ISLKD_CHECK(impl_->layout == Layout::Plain, "data(): tensor is in a blocked layout; call to_plain() first");
  return static_cast<float*>(raw_data());
}
int32_t* Tensor::data_i32() const {
  ISLKD_CHECK(impl_ && impl_->dtype == DType::I32, "data_i32(): tensor is not int32");
  return static_cast<int32_t*>(raw_data());
}
const std::shared_ptr<Storage>& Tensor::storage() const { return impl_->storage; }

static void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0) return;
  if (dd == Device::CPU && sd == Device::CPU)
    std::memcpy(dst, src, bytes);
  else if (dd == Device::CUDA && sd == Device::CPU)
    cuda::memcpy_h2d(dst, src, bytes);
  else if (dd == Device::CPU && sd == Device::CUDA)
    cuda::memcpy_d2h(dst, src, bytes);
  else
    cuda::memcpy_d2d(dst, src, bytes);
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor src = to_plain();
  Tensor t = empty(shape(), device, dtype());
  copy_bytes(t.raw_data(), device, src.raw_data(), src.device(), static_cast<size_t>(numel()) * 4);
  return t;
}

Tensor Tensor::clone() const {
  Tensor src = to_plain();
  Tensor t = empty(shape(), device(), dtype());
  copy_bytes(t.raw_data(), device(), src.raw_data(), device(), static_cast<size_t>(numel()) * 4);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  ISLKD_CHECK(shape() == src.shape() && dtype() == src.dtype(), "copy_from: shape ", shape_str(src.shape()),
              " does not match ", shape_str(shape()));
  Tensor s = src.to_plain();
  copy_bytes(raw_data(), device(), s.raw_data(), s.device(), static_cast<size_t>(numel()) * 4);
}

std::vector<float> Tensor::to_vector() const {
  Tensor src = to_plain();
  ISLKD_CHECK(dtype() == DType::F32, "to_vector(): tensor is not float32");
  std::vector<float> v(static_cast<size_t>(numel()));
  copy_bytes(v.data(), Device::CPU, src.raw_data(), device(), v.size() * 4);
  return v;
}

std::vector<int32_t> Tensor::to_labels() const {
  ISLKD_CHECK(dtype() == DType::I32, "to_labels(): tensor is not int32");
  std::vector<int32_t> v(static_cast<size_t>(numel()));
  copy_bytes(v.data(), Device::CPU, raw_data(), device(), v.size() * 4);
  return v;
}

float Tensor::item() const {
  ISLKD_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()), " is not a single value");
  return to_vector()[0];
}

Tensor Tensor::view(const Shape& shape) const {
  ISLKD_CHECK(shape_numel(shape) == numel(), "view: cannot view shape ", shape_str(this->shape()), " as ",
              shape_str(shape));
  Tensor src = to_plain();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = src.impl_->storage;
  impl->offset_bytes = src.impl_->offset_bytes;
  impl->shape = shape;
  impl->dtype = src.impl_->dtype;
  return Tensor(impl);
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset_bytes = impl_->offset_bytes;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  impl->layout = impl_->layout;
  impl->layout_desc = impl_->layout_desc;
  return Tensor(impl);
}

Tensor Tensor::to_plain() const {
  if (impl_->layout == Layout::Plain) return *this;
  ISLKD_CHECK(device() == Device::CPU && impl_->layout_desc && dtype() == DType::F32,
              "to_plain: no converter for this blocked layout (only the CPU backend's oneDNN layouts have one)");
  Tensor t = empty(shape(), Device::CPU);
  cpu::blocked_to_plain(*static_cast<const cpu::BlockedLayout*>(impl_->layout_desc.get()),
                        static_cast<const float*>(raw_data()), t.data());
  // Ops convert blocked inputs at their boundary: in training the gradient must flow back through that
  // conversion (accumulate_grad puts it into this tensor's layout).
  if (needs_grad({this})) {
    const Tensor src = *this;
    record("to_plain", {src}, {t}, [src](const std::vector<Tensor>& g) { accumulate_grad(src, g[0]); });
  }
  return t;
}

Tensor Tensor::empty_blocked(const Shape& shape, std::shared_ptr<const void> layout_desc) {
  ISLKD_CHECK(layout_desc, "empty_blocked: no layout");
  const auto* l = static_cast<const cpu::BlockedLayout*>(layout_desc.get());
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = std::make_shared<Storage>(cpu::blocked_bytes(*l), Device::CPU);
  impl->layout = Layout::DnnlBlocked;
  impl->layout_desc = std::const_pointer_cast<void>(layout_desc);
  return Tensor(impl);
}

bool same_layout(const Tensor& a, const Tensor& b) {
  if (a.layout() != b.layout()) return false;
  if (a.layout() == Layout::Plain) return true;
  return cpu::same_blocked_layout(*static_cast<const cpu::BlockedLayout*>(a.impl()->layout_desc.get()),
                                  *static_cast<const cpu::BlockedLayout*>(b.impl()->layout_desc.get()));
}

Tensor Tensor::to_layout_of(const Tensor& ref) const {
  if (same_layout(*this, ref)) return *this;
  if (ref.layout() == Layout::Plain) return to_plain();
  ISLKD_CHECK(shape() == ref.shape(), "to_layout_of: shapes differ: ", shape_str(shape()), " and ",
              shape_str(ref.shape()));
  return to_blocked(ref.impl()->layout_desc);
}

Tensor Tensor::to_blocked(const std::shared_ptr<void>& layout_desc) const {
  if (impl_->layout == Layout::DnnlBlocked &&
      cpu::same_blocked_layout(*static_cast<const cpu::BlockedLayout*>(impl_->layout_desc.get()),
                               *static_cast<const cpu::BlockedLayout*>(layout_desc.get())))
    return *this;
  ISLKD_CHECK(device() == Device::CPU && dtype() == DType::F32, "to_blocked: blocked layouts are for float32 CPU "
              "tensors");
  Tensor plain = to_plain();
  Tensor t = empty_blocked(shape(), layout_desc);
  cpu::plain_to_blocked(*static_cast<const cpu::BlockedLayout*>(layout_desc.get()), plain.data(),
                        static_cast<float*>(t.raw_data()));
  return t;
}

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }
const Tensor& Tensor::set_requires_grad(bool r) const {
  impl_->requires_grad = r;
  return *this;
}
bool Tensor::is_leaf() const { return !impl_->grad_fn; }
Tensor Tensor::grad() const { return impl_->grad ? Tensor(impl_->grad) : Tensor(); }
void Tensor::set_grad(const Tensor& g) const { impl_->grad = g.impl_ptr(); }
void Tensor::zero_grad() const { impl_->grad.reset(); }

void accumulate_grad(const Tensor& t, const Tensor& g_in) {
  ISLKD_CHECK(t.shape() == g_in.shape() || t.numel() == g_in.numel(), "accumulate_grad: gradient shape ",
              shape_str(g_in.shape()), " does not match tensor shape ", shape_str(t.shape()));
  TensorImpl* impl = t.impl();
  // A gradient has its tensor's layout (a blocked activation's gradient is blocked the same way).
  const Tensor g = g_in.shape() == t.shape() ? g_in.to_layout_of(t) : g_in.to_plain();
  // A fresh gradient that nothing else refers to (a backward's local dx) is adopted instead of copied: one
  // read+write pass less per activation gradient. The owners we know of: the caller's tensor behind g_in, and g
  // itself when the layout conversion was a no-op (then g is a second handle on the same impl).
  const auto& gi = g.impl_ptr();
  const long known_owners = gi.get() == g_in.impl() ? 2 : 1;
  const bool adoptable = gi.use_count() <= known_owners && gi->storage.use_count() == 1 && !gi->grad_fn &&
                         gi->offset_bytes == 0 && g.dtype() == t.dtype() && g.device() == t.device();
  if (t.layout() == Layout::DnnlBlocked) {
    if (!impl->grad) {
      if (adoptable) {
        impl->grad = gi;
      } else {
        Tensor c = Tensor::empty_blocked(t.shape(), t.impl()->layout_desc);
        std::memcpy(c.raw_data(), g.raw_data(), c.storage()->bytes());
        impl->grad = c.impl_ptr();
      }
      return;
    }
    Tensor acc(impl->grad);
    cpu::accumulate(static_cast<const float*>(g.raw_data()), static_cast<float*>(acc.raw_data()),
                    static_cast<int64_t>(acc.storage()->bytes() / sizeof(float)));
    return;
  }
  if (!impl->grad) {
    if (adoptable && gi->layout == Layout::Plain && g.shape() == t.shape()) {
      impl->grad = gi;
      return;
    }
    Tensor c = g.clone();
    c.impl()->shape = t.shape();
    impl->grad = c.impl_ptr();
    return;
  }
  Tensor acc(impl->grad);
  if (acc.is_cuda())
    cuda::accumulate(g.data(), acc.data(), acc.numel());
  else
    cpu::accumulate(g.data(), acc.data(), acc.numel());
}

}  // namespace islkd
