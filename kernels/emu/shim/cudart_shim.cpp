// The CUDA runtime subset that kernels/cuda's host code calls, served on the CPU for the emulated backend:
// device memory is 256-byte aligned host memory (recorded, so a bad cudaFree or an out-of-range copy is an
// error), launches run synchronously under islkd_emu, so streams and events only validate their handles.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "kernels/emu/emu_api.h"
#include "kernels/emu/shim/shim_internal.h"

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  unsigned flags;
  bool recorded;
};

namespace islkd_cuda_shim {
namespace detail {

Counters& counters() {
  static Counters c;
  return c;
}

void explain(const char* call, const char* why) { std::fprintf(stderr, "islkd CUDA shim: %s: %s\n", call, why); }

namespace {

struct Registry {
  std::mutex mu;
  std::map<const char*, size_t> device;  // base -> bytes
  std::map<const char*, size_t> host;    // pinned host allocations
  std::set<cudaStream_t> streams;
  std::set<cudaEvent_t> events;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: statics of other TUs may free memory at exit
  return *r;
}

thread_local cudaError_t last_error = cudaSuccess;
int current_device = 0;

cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

// Caller holds the lock.
bool in_map(const std::map<const char*, size_t>& m, const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  auto it = m.upper_bound(c);
  if (it == m.begin()) return false;
  --it;
  return c >= it->first && c + bytes <= it->first + it->second;
}

bool valid_stream(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.streams.count(s) != 0;
}

// "1" makes one device visible; "2" .. "16" that many (data-parallel tests: one per local rank, each process's
// device being its own host memory); anything else none.
int device_count() {
  const char* v = std::getenv(kEnableVariable);
  if (v == nullptr) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end != v && *end == '\0' && n >= 1 && n <= 16 ? static_cast<int>(n) : 0;
}
bool device_enabled() { return device_count() > 0; }

// Calls that need a device context fail, as on a machine without a driver, unless the device is enabled.
bool no_device(const char* call) {
  if (device_enabled()) return false;
  explain(call, "no emulated CUDA device (set ISLKD_EMULATED_CUDA=1 to enable it)");
  last_error = cudaErrorNoDevice;
  return true;
}

// Host memory: anything that is not a device allocation (pageable or pinned).
cudaError_t check_copy(const char* call, void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (count == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) {
    explain(call, "null pointer");
    return fail(cudaErrorInvalidValue);
  }
  const bool dst_dev = is_device_range(dst, count), src_dev = is_device_range(src, count);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dst_dev && !src_dev; break;
    case cudaMemcpyDeviceToHost: ok = src_dev && !dst_dev; break;
    case cudaMemcpyDeviceToDevice: ok = src_dev && dst_dev; break;
    case cudaMemcpyHostToHost: ok = !src_dev && !dst_dev; break;
    case cudaMemcpyDefault: ok = true; break;
    default: explain(call, "unknown cudaMemcpyKind"); return fail(cudaErrorInvalidMemcpyDirection);
  }
  if (!ok) {
    explain(call, "a pointer is not device memory of the right size for the copy's direction (device "
                  "pointers must come from cudaMalloc and the range must lie inside one allocation)");
    return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

}  // namespace

bool is_device_range(const void* p, size_t bytes) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return in_map(r.device, p, bytes);
}

}  // namespace detail

Stats stats() {
  const detail::Counters& c = detail::counters();
  Stats s;
  s.mallocs = c.mallocs, s.frees = c.frees, s.host_mallocs = c.host_mallocs, s.host_frees = c.host_frees;
  s.live_allocations = c.live_allocations, s.live_bytes = c.live_bytes;
  s.memcpys = c.memcpys, s.memsets = c.memsets, s.sgemms = c.sgemms;
  s.conv_forward = c.conv_forward, s.conv_backward_data = c.conv_backward_data;
  s.conv_backward_filter = c.conv_backward_filter, s.conv_backward_bias = c.conv_backward_bias;
  s.algorithm_queries = c.algorithm_queries;
  s.last_conv_math_type = c.last_conv_math_type, s.last_gemm_math_mode = c.last_gemm_math_mode;
  return s;
}

}  // namespace islkd_cuda_shim

using namespace islkd_cuda_shim;
using namespace islkd_cuda_shim::detail;

extern "C" {

// ---- memory ------------------------------------------------------------------------------------------------
// posix_memalign with the exact size: under ASan an overrun by one byte is reported.
cudaError_t cudaMalloc(void** p, size_t size) {
  if (no_device("cudaMalloc")) return cudaErrorNoDevice;
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  *p = nullptr;
  if (size == 0) return cudaSuccess;
  void* mem = nullptr;
  if (posix_memalign(&mem, 256, size) != 0) return fail(cudaErrorMemoryAllocation);
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.device[static_cast<const char*>(mem)] = size;
  }
  counters().mallocs++;
  counters().live_allocations++;
  counters().live_bytes += size;
  *p = mem;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  size_t size = 0;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.device.find(static_cast<const char*>(p));
    if (it == r.device.end()) {
      explain("cudaFree", "pointer was not returned by cudaMalloc, or was already freed");
      return fail(cudaErrorInvalidValue);
    }
    size = it->second;
    r.device.erase(it);
  }
  std::free(p);
  counters().frees++;
  counters().live_allocations--;
  counters().live_bytes -= size;
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t size) {
  if (no_device("cudaMallocHost")) return cudaErrorNoDevice;
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  *p = nullptr;
  if (size == 0) return cudaSuccess;
  void* mem = nullptr;
  if (posix_memalign(&mem, 256, size) != 0) return fail(cudaErrorMemoryAllocation);
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.host[static_cast<const char*>(mem)] = size;
  }
  counters().host_mallocs++;
  *p = mem;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) {
  if (p == nullptr) return cudaSuccess;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.host.find(static_cast<const char*>(p));
    if (it == r.host.end()) {
      explain("cudaFreeHost", "pointer was not returned by cudaMallocHost, or was already freed");
      return fail(cudaErrorInvalidValue);
    }
    r.host.erase(it);
  }
  std::free(p);
  counters().host_frees++;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (cudaError_t e = check_copy("cudaMemcpy", dst, src, count, kind)) return e;
  if (count) std::memmove(dst, src, count);
  counters().memcpys++;
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void* dst, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  if (!is_device_range(dst, count)) {
    explain("cudaMemset", "the range is not inside one cudaMalloc allocation");
    return fail(cudaErrorInvalidValue);
  }
  std::memset(dst, value, count);
  counters().memsets++;
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t count, cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemset(dst, value, count);
}

// ---- streams and events: launches are synchronous, so these only check their handles --------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  if (no_device("cudaStreamCreateWithFlags")) return cudaErrorNoDevice;
  if (s == nullptr) return fail(cudaErrorInvalidValue);
  *s = new CUstream_st{flags};
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.streams.erase(s) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return valid_stream(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.events.count(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags) {
  if (no_device("cudaEventCreateWithFlags")) return cudaErrorNoDevice;
  if (e == nullptr) return fail(cudaErrorInvalidValue);
  *e = new CUevent_st{flags, false};
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.events.insert(*e);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.events.erase(e) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.events.count(e)) return fail(cudaErrorInvalidResourceHandle);
  e->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.events.count(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

// Work is done when it is queued here, so a recorded event has always completed.
cudaError_t cudaEventQuery(cudaEvent_t e) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.events.count(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

// ---- device queries ------------------------------------------------------------------------------------------
// One emulated device, visible only with ISLKD_EMULATED_CUDA=1 (a machine without a driver otherwise); =N shows N
// identical ones, so that N ranks of a data-parallel test each take "their" device.
cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = device_count();
  return *count ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (no_device("cudaSetDevice")) return cudaErrorNoDevice;
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}

// The figures of an H100 SXM (sm_90), so launch-geometry code sees realistic values.
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return fail(cudaErrorInvalidValue);
  if (device < 0 || device >= std::max(device_count(), 1)) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 227 * 1024; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = 2048; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxGridDimX: *value = 2147483647; break;
    case cudaDevAttrMaxGridDimY: *value = 65535; break;
    case cudaDevAttrMaxGridDimZ: *value = 65535; break;
    default: explain("cudaDeviceGetAttribute", "attribute not served by the shim"); return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (func == nullptr || value < 0) return fail(cudaErrorInvalidValue);
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
    explain("cudaFuncSetAttribute", "only cudaFuncAttributeMaxDynamicSharedMemorySize is served by the shim");
    return fail(cudaErrorInvalidValue);
  }
  islkd_emu::set_max_dynamic_shared_bytes(func, static_cast<size_t>(value));
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    default: return "unknown error";
  }
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    default: return "cudaErrorUnknown";
  }
}

}  // extern "C"
