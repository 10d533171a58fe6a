// The CUDA backend's host side: device discovery and selection, the compute and copy streams, the caching
// device allocator, pinned host memory, copies and the prefetch pair, and the error reporting behind
// ISLKD_CUDA_CHECK. Built against the real runtime (islkd_cuda) and against the shim (islkd_cuda_emu).
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/vendor.h"

// Under AddressSanitizer the allocator does not pool: every device_malloc is its own cudaMalloc of the exact
// size (host memory under the emulator), so an overrun by a kernel or a copy is reported at once.
#if defined(ISLKD_SANITIZE) || defined(__SANITIZE_ADDRESS__)
#define ISLKD_ALLOCATOR_POOLS 0
#else
#define ISLKD_ALLOCATOR_POOLS 1
#endif

namespace islkd::cuda {

// ---- counters ------------------------------------------------------------------------------------------------
namespace {

struct AtomicCounters {
  std::atomic<uint64_t> kernel_launches{0}, cudnn_calls{0}, cublas_calls{0}, host_syncs{0};
  std::atomic<uint64_t> h2d_pageable{0}, h2d_pinned{0}, d2h_pageable{0}, d2h_pinned{0}, d2d{0};
  std::atomic<uint64_t> h2d_bytes{0}, d2h_bytes{0}, d2d_bytes{0};
  std::atomic<uint64_t> cuda_mallocs{0}, cuda_malloc_bytes{0};
};

AtomicCounters& ctr() {
  static AtomicCounters* c = new AtomicCounters;  // never destroyed: counted calls may come during exit
  return *c;
}

void bump(std::atomic<uint64_t>& c, uint64_t by = 1) { c.fetch_add(by, std::memory_order_relaxed); }

// Stream synchronisations the host waits on, counted.
void host_sync(cudaStream_t s, const char* call, const char* file, int line) {
  bump(ctr().host_syncs);
  const cudaError_t e = cudaStreamSynchronize(s);
  if (e != cudaSuccess) throw_cuda_error(call, static_cast<int>(e), cudaGetErrorString(e), file, line);
}

// Pinned blocks handed out by pinned_host_malloc (start -> bytes), so a copy can be classified pinned/pageable.
std::mutex pinned_mu;
std::map<uintptr_t, size_t>& pinned_blocks() {
  static auto* m = new std::map<uintptr_t, size_t>;
  return *m;
}

bool is_pinned(const void* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(pinned_mu);
  auto& m = pinned_blocks();
  auto it = m.upper_bound(a);
  if (it == m.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}

}  // namespace

namespace detail {
void count_launch() { bump(ctr().kernel_launches); }
void count_cudnn_call() { bump(ctr().cudnn_calls); }
void count_cublas_call() { bump(ctr().cublas_calls); }
void count_host_sync() { bump(ctr().host_syncs); }
}  // namespace detail

Counters counters() {
  const AtomicCounters& a = ctr();
  Counters c;
  c.kernel_launches = a.kernel_launches.load(), c.cudnn_calls = a.cudnn_calls.load();
  c.cublas_calls = a.cublas_calls.load(), c.host_syncs = a.host_syncs.load();
  c.h2d_pageable = a.h2d_pageable.load(), c.h2d_pinned = a.h2d_pinned.load();
  c.d2h_pageable = a.d2h_pageable.load(), c.d2h_pinned = a.d2h_pinned.load(), c.d2d = a.d2d.load();
  c.h2d_bytes = a.h2d_bytes.load(), c.d2h_bytes = a.d2h_bytes.load(), c.d2d_bytes = a.d2d_bytes.load();
  c.cuda_mallocs = a.cuda_mallocs.load(), c.cuda_malloc_bytes = a.cuda_malloc_bytes.load();
  return c;
}

Counters counters_delta(const Counters& a, const Counters& b) {
  Counters d;
  d.kernel_launches = b.kernel_launches - a.kernel_launches, d.cudnn_calls = b.cudnn_calls - a.cudnn_calls;
  d.cublas_calls = b.cublas_calls - a.cublas_calls, d.host_syncs = b.host_syncs - a.host_syncs;
  d.h2d_pageable = b.h2d_pageable - a.h2d_pageable, d.h2d_pinned = b.h2d_pinned - a.h2d_pinned;
  d.d2h_pageable = b.d2h_pageable - a.d2h_pageable, d.d2h_pinned = b.d2h_pinned - a.d2h_pinned;
  d.d2d = b.d2d - a.d2d;
  d.h2d_bytes = b.h2d_bytes - a.h2d_bytes, d.d2h_bytes = b.d2h_bytes - a.d2h_bytes;
  d.d2d_bytes = b.d2d_bytes - a.d2d_bytes;
  d.cuda_mallocs = b.cuda_mallocs - a.cuda_mallocs, d.cuda_malloc_bytes = b.cuda_malloc_bytes - a.cuda_malloc_bytes;
  return d;
}

void throw_cuda_error(const char* call, int code, const char* message, const char* file, int line) {
  ISLKD_FAIL(call, " failed: ", message ? message : "unknown error", " (code ", code, ") at ", file, ":", line);
}

const char* cublas_status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

bool is_emulated() {
#if defined(ISLKD_CUDA_EMULATED)
  return true;
#else
  return false;
#endif
}

bool device_available(std::string* why) {
  try {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      cudaGetLastError();  // the failed query must not surface later as a launch error
      if (why) {
        *why = std::string("cudaGetDeviceCount: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "no device");
#if !defined(ISLKD_CUDA_EMULATED)
        if (e == cudaErrorInsufficientDriver) {  // error 35: every call fails, say why once, clearly
          int driver = 0, runtime = 0;
          cudaDriverGetVersion(&driver);
          cudaRuntimeGetVersion(&runtime);
          const std::string rt = std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10);
          *why += driver == 0 ? " (error 35: no NVIDIA driver is installed; this build's CUDA " + rt + " runtime "
                                "needs one, CUDA 13 needs driver >= 580)"
                              : " (error 35: this build's CUDA " + rt + " runtime needs a newer NVIDIA driver than "
                                "the installed one (CUDA " + std::to_string(driver / 1000) + "." +
                                std::to_string(driver % 1000 / 10) + "); CUDA 13 needs driver >= 580)";
        }
#endif
        if (is_emulated())
          *why += " (this build runs CUDA under the CPU emulator; set ISLKD_EMULATED_CUDA=1 to use it)";
      }
      return false;
    }
    if (why) *why = is_emulated() ? "emulated CUDA device (kernels run on the CPU)" : "CUDA device found";
    return true;
  } catch (const std::exception& ex) {  // a broken runtime must not crash device selection
    if (why) *why = ex.what();
    return false;
  } catch (...) {
    if (why) *why = "unknown error querying the CUDA runtime";
    return false;
  }
}

// ---- streams ---------------------------------------------------------------------------------------------
namespace {

struct Streams {
  cudaStream_t compute = nullptr, copy = nullptr;
  cudaEvent_t compute_mark = nullptr;  // where the compute stream was when a prefetch was queued
  cudaEvent_t prefetched = nullptr;    // after the last prefetch copy
};

Streams& streams() {
  static Streams s = [] {
    Streams t;
    // Non-blocking: neither stream synchronises with the legacy default stream (cuBLAS/cuDNN get ours anyway).
    ISLKD_CUDA_CHECK(cudaStreamCreateWithFlags(&t.compute, cudaStreamNonBlocking));
    ISLKD_CUDA_CHECK(cudaStreamCreateWithFlags(&t.copy, cudaStreamNonBlocking));
    ISLKD_CUDA_CHECK(cudaEventCreateWithFlags(&t.compute_mark, cudaEventDisableTiming));
    ISLKD_CUDA_CHECK(cudaEventCreateWithFlags(&t.prefetched, cudaEventDisableTiming));
    return t;
  }();
  return s;
}

}  // namespace

cudaStream_t compute_stream() { return streams().compute; }

void set_device(int ordinal) { ISLKD_CUDA_CHECK(cudaSetDevice(ordinal)); }

// One wait of the host (counted once), on both streams.
void synchronize() {
  bump(ctr().host_syncs);
  ISLKD_CUDA_CHECK(cudaStreamSynchronize(streams().compute));
  ISLKD_CUDA_CHECK(cudaStreamSynchronize(streams().copy));
}

// ---- the communication stream (data-parallel gradients) -------------------------------------------------------
// Created on first use only: one-process runs never make it. NCCL's collectives run on it so that they can overlap
// compute work queued after them; the two events order it with the compute stream in both directions.
namespace {
struct CommStream {
  cudaStream_t stream = nullptr;
  cudaEvent_t compute_ready = nullptr;  // the compute stream's work up to the gradients' packing
  cudaEvent_t comm_done = nullptr;      // the collectives queued on the comm stream
};
CommStream& comm() {
  static CommStream c = [] {
    CommStream t;
    ISLKD_CUDA_CHECK(cudaStreamCreateWithFlags(&t.stream, cudaStreamNonBlocking));
    ISLKD_CUDA_CHECK(cudaEventCreateWithFlags(&t.compute_ready, cudaEventDisableTiming));
    ISLKD_CUDA_CHECK(cudaEventCreateWithFlags(&t.comm_done, cudaEventDisableTiming));
    return t;
  }();
  return c;
}
}  // namespace

void* comm_stream_after_compute() {
  CommStream& c = comm();
  ISLKD_CUDA_CHECK(cudaEventRecord(c.compute_ready, compute_stream()));
  ISLKD_CUDA_CHECK(cudaStreamWaitEvent(c.stream, c.compute_ready, 0));
  return static_cast<void*>(c.stream);
}

void compute_waits_for_comm_stream() {
  CommStream& c = comm();
  ISLKD_CUDA_CHECK(cudaEventRecord(c.comm_done, c.stream));
  ISLKD_CUDA_CHECK(cudaStreamWaitEvent(compute_stream(), c.comm_done, 0));
}

// ---- caching device allocator ------------------------------------------------------------------------------
// Blocks are rounded up to a size class and, when freed, kept in a per-class free list instead of going back to
// cudaFree, so the steady state of training (the same tensor sizes every step) makes no cudaMalloc/cudaFree.
// Reuse is stream-ordered: every kernel runs on the compute stream, so work queued after a free runs after
// the work that used the block, and the block can be handed out again at once. The only other stream writes
// prefetch destinations; memcpy_h2d_prefetch orders the copy after the compute stream's queued work.
namespace {

// 512-byte granularity below 1 MiB; above, 8 classes per power of two (at most 12.5% waste).
size_t size_class(size_t bytes) {
  if (bytes <= 512) return 512;
  auto round_up = [](size_t v, size_t m) { return (v + m - 1) / m * m; };
  if (bytes < (size_t(1) << 20)) return round_up(bytes, 512);
  size_t p = size_t(1) << 20;
  while (p * 2 <= bytes) p *= 2;
  return round_up(bytes, p / 8);
}

class Allocator {
 public:
  void* allocate(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t cls = ISLKD_ALLOCATOR_POOLS ? size_class(bytes) : (bytes ? bytes : 1);
    void* p = nullptr;
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached_ -= cls;
    } else {
      cudaError_t e = cudaMalloc(&p, cls);
      if (e == cudaErrorMemoryAllocation && cached_ > 0) {  // give the cache back and try once more
        cudaGetLastError();
        release_locked();
        e = cudaMalloc(&p, cls);
      }
      if (e != cudaSuccess) {
        cudaGetLastError();
        throw_cuda_error("cudaMalloc", static_cast<int>(e), cudaGetErrorString(e), __FILE__, __LINE__);
      }
      reserved_ += cls;
      bump(ctr().cuda_mallocs);
      bump(ctr().cuda_malloc_bytes, cls);
    }
    live_[p] = cls;
    in_use_ += cls;
    if (in_use_ > peak_) peak_ = in_use_;
    return p;
  }

  // Never throws: called from Storage's destructor.
  void release(void* p) {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      std::fprintf(stderr, "islkd: device_free of a pointer the CUDA allocator did not hand out (ignored)\n");
      return;
    }
    const size_t cls = it->second;
    live_.erase(it);
    in_use_ -= cls;
    if (ISLKD_ALLOCATOR_POOLS) {
      free_[cls].push_back(p);
      cached_ += cls;
    } else {
      cudaFree(p);
      reserved_ -= cls;
    }
  }

  void release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }

  size_t peak() {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }
  size_t in_use() {
    std::lock_guard<std::mutex> lock(mu_);
    return in_use_;
  }

 private:
  void release_locked() {
    if (cached_ == 0) return;
    // Cached blocks may still be read by queued kernels: let the device finish before cudaFree.
    bump(ctr().host_syncs);
    cudaDeviceSynchronize();
    for (auto& [cls, blocks] : free_) {
      for (void* p : blocks) {
        cudaFree(p);
        reserved_ -= cls;
      }
      blocks.clear();
    }
    cached_ = 0;
  }

  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  std::unordered_map<void*, size_t> live_;     // handed-out block -> its size class
  size_t in_use_ = 0, peak_ = 0, cached_ = 0, reserved_ = 0;
};

Allocator& allocator() {
  static Allocator* a = new Allocator;  // never destroyed: tensors in static storage may be freed at exit
  return *a;
}

}  // namespace

void* device_malloc(size_t bytes) { return allocator().allocate(bytes); }
void device_free(void* p) { allocator().release(p); }
size_t allocator_peak_bytes() { return allocator().peak(); }
size_t allocator_in_use_bytes() { return allocator().in_use(); }
void allocator_release_cached() { allocator().release_cached(); }

void* pinned_host_malloc(size_t bytes) {
  void* p = nullptr;
  ISLKD_CUDA_CHECK(cudaMallocHost(&p, bytes));
  std::lock_guard<std::mutex> lock(pinned_mu);
  pinned_blocks()[reinterpret_cast<uintptr_t>(p)] = bytes;
  return p;
}

// Never throws: the loader frees its pinned buffers in its destructor.
void pinned_host_free(void* p) {
  if (p == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(pinned_mu);
    pinned_blocks().erase(reinterpret_cast<uintptr_t>(p));
  }
  const cudaError_t e = cudaFreeHost(p);
  if (e != cudaSuccess) {
    cudaGetLastError();
    std::fprintf(stderr, "islkd: cudaFreeHost failed: %s (ignored)\n", cudaGetErrorString(e));
  }
}

// ---- copies ------------------------------------------------------------------------------------------------
// On the compute stream, so they are ordered with the kernels. From pageable memory cudaMemcpyAsync returns once
// the source has been staged, so the caller may reuse it; device-to-host waits, since the caller reads dst.
void memcpy_h2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  bump(is_pinned(src, bytes) ? ctr().h2d_pinned : ctr().h2d_pageable);
  bump(ctr().h2d_bytes, bytes);
  ISLKD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, compute_stream()));
}

void memcpy_d2h(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  bump(is_pinned(dst, bytes) ? ctr().d2h_pinned : ctr().d2h_pageable);
  bump(ctr().d2h_bytes, bytes);
  ISLKD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, compute_stream()));
  host_sync(compute_stream(), "cudaStreamSynchronize(compute)", __FILE__, __LINE__);
}

void memcpy_d2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  bump(ctr().d2d);
  bump(ctr().d2d_bytes, bytes);
  ISLKD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, compute_stream()));
}

// The copy stream first waits for the compute work queued so far (dst may be a block the allocator just
// recycled from it), then copies while the compute stream goes on with what is queued after.
void memcpy_h2d_prefetch(void* dst, const void* src_pinned, size_t bytes) {
  if (bytes == 0) return;
  bump(is_pinned(src_pinned, bytes) ? ctr().h2d_pinned : ctr().h2d_pageable);
  bump(ctr().h2d_bytes, bytes);
  Streams& s = streams();
  ISLKD_CUDA_CHECK(cudaEventRecord(s.compute_mark, s.compute));
  ISLKD_CUDA_CHECK(cudaStreamWaitEvent(s.copy, s.compute_mark, 0));
  ISLKD_CUDA_CHECK(cudaMemcpyAsync(dst, src_pinned, bytes, cudaMemcpyHostToDevice, s.copy));
  ISLKD_CUDA_CHECK(cudaEventRecord(s.prefetched, s.copy));
}

// ---- staged uploads ----------------------------------------------------------------------------------------
// kStagingSlots pinned buffers used in turn; a slot is rewritten only once the copy that read it has completed
// (its event; normally long done, else the wait is counted as a host sync). The copy runs on the copy stream after
// the compute stream's queued work (dst may be a block the allocator just recycled from it), and the compute
// stream waits for it before its next op: the block crosses streams in both directions in order.
namespace {

constexpr int kStagingSlots = 8;

struct StagingSlot {
  void* host = nullptr;
  size_t capacity = 0;
  cudaEvent_t done = nullptr;
  bool pending = false;
};

struct Staging {
  std::mutex mu;
  StagingSlot slots[kStagingSlots];
  int next = 0;
};

Staging& staging() {
  static Staging* s = new Staging;  // never destroyed: pinned blocks may be in flight at exit
  return *s;
}

}  // namespace

void memcpy_h2d_staged(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  StagingSlot& slot = st.slots[st.next];
  st.next = (st.next + 1) % kStagingSlots;
  if (slot.done == nullptr) ISLKD_CUDA_CHECK(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming));
  if (slot.pending) {
    const cudaError_t q = cudaEventQuery(slot.done);
    if (q == cudaErrorNotReady) {
      bump(ctr().host_syncs);
      ISLKD_CUDA_CHECK(cudaEventSynchronize(slot.done));
    } else {
      ISLKD_CUDA_CHECK(q);
    }
    slot.pending = false;
  }
  if (slot.capacity < bytes) {
    pinned_host_free(slot.host);
    slot.host = nullptr;
    slot.capacity = 0;
    const size_t cap = bytes < 4096 ? 4096 : bytes + bytes / 4;  // room to grow without a new block each time
    slot.host = pinned_host_malloc(cap);
    slot.capacity = cap;
  }
  std::memcpy(slot.host, src, bytes);
  Streams& s = streams();
  bump(ctr().h2d_pinned);
  bump(ctr().h2d_bytes, bytes);
  ISLKD_CUDA_CHECK(cudaEventRecord(s.compute_mark, s.compute));
  ISLKD_CUDA_CHECK(cudaStreamWaitEvent(s.copy, s.compute_mark, 0));
  ISLKD_CUDA_CHECK(cudaMemcpyAsync(dst, slot.host, bytes, cudaMemcpyHostToDevice, s.copy));
  ISLKD_CUDA_CHECK(cudaEventRecord(slot.done, s.copy));
  slot.pending = true;
  ISLKD_CUDA_CHECK(cudaStreamWaitEvent(s.compute, slot.done, 0));
}

void wait_prefetch() {
  Streams& s = streams();
  ISLKD_CUDA_CHECK(cudaStreamWaitEvent(s.compute, s.prefetched, 0));
}

}  // namespace islkd::cuda
