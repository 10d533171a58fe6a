// cuda_emu.h: lets a CUDA .cu file compile as plain C++17 and run on the CPU under the islkd CUDA execution
// emulator (runtime: static library islkd_emu). It must come before anything else in the translation unit
// (`-include kernels/emu/cuda_emu.h`, or the wrappers islkd_add_emulated_cuda_library generates).
// The rules a kernel follows to run both under nvcc and here are in kernels/README.md.
#pragma once

#if defined(__CUDACC__)
#error "kernels/emu/cuda_emu.h is for host compilers; under nvcc include kernels/emu/launch.h instead"
#endif

#define ISLKD_EMU 1

// Execution-space qualifiers mean nothing on the CPU. They are defined before the toolkit headers, whose
// crt/host_defines.h keeps an existing definition when not compiling with nvcc.
#define __host__
#define __device__
#define __global__
#define __constant__
#define __managed__
#define __grid_constant__
#define __launch_bounds__(...)
// Static __shared__ variables: per OS thread, and an OS thread runs one block at a time, so every block sees its
// own copy. islkd_add_emulated_cuda_library goes further and rewrites `__shared__ T name[dims];` inside
// functions into per-block heap arrays (exact size, so ASan sees overruns); this macro covers everything else.
#define __shared__ static thread_local

#if __has_include(<cuda_runtime.h>)
// The toolkit's types (dim3, uint3, float4, cudaStream_t, ...) and prototypes. The emulator defines no cudart
// function; the shim (kernels/emu/shim) does.
#include <cuda_runtime.h>
#else
#define ISLKD_EMU_OWN_VECTOR_TYPES 1
#endif

#include <math.h>  // before the intrinsics below: glibc declares some of their names (e.g. __expf)

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/emu/emu_api.h"

#if defined(ISLKD_EMU_OWN_VECTOR_TYPES)
#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
struct uint3 {
  unsigned int x, y, z;
};
struct int2 {
  int x, y;
};
struct float2 {
  float x, y;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
#endif

// ---- built-in variables ----------------------------------------------------------------------------------------
// Real thread-local variables, rewritten by the scheduler before it resumes a fiber. blockDim and gridDim are
// uint3 (convertible to dim3) so that reading them costs no TLS-initialisation call.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local uint3 blockDim;
extern thread_local uint3 gridDim;
static constexpr int warpSize = 32;

namespace islkd_emu {
namespace detail {

struct KernelCall {
  const char* name;                   // the kernel expression as written in ISLKD_LAUNCH
  const void* kernel;                 // identity of the kernel (for set_max_dynamic_shared_bytes)
  void (*invoke)(const void* closure);  // runs the kernel body for the current thread
  const void* closure;
};
void launch(const KernelCall& call, dim3 grid, dim3 block, size_t dynamic_shared_bytes);

void syncthreads(const char* file, int line);
int syncthreads_reduce(int op, int predicate, const char* file, int line);  // op: 0 count, 1 and, 2 or
void* dynamic_shared();
void* static_shared(const void* site, size_t bytes, size_t align);

enum class WarpOp : int {
  Sync, Shfl, ShflUp, ShflDown, ShflXor, Ballot, All, Any, MatchAny, MatchAll,
  ReduceAddU, ReduceMinU, ReduceMaxU, ReduceMinI, ReduceMaxI, ReduceAnd, ReduceOr, ReduceXor, Count
};
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int param, int width, const char* file, int line);
unsigned activemask();

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp intrinsics take values of <= 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <typename Closure>
void invoke_closure(const void* p) {
  const Closure& c = *static_cast<const Closure*>(p);
  std::apply(c.kernel, c.params);  // by-value kernel parameters: every thread gets its own copies
}

template <typename... P>
class Launch {
 public:
  Launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared)
      : name_(name), kernel_(kernel), grid_(grid), block_(block), shared_(shared) {}
  template <typename... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "ISLKD_LAUNCH: wrong number of kernel arguments");
    struct Closure {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...> params;
    };
    const Closure c{kernel_, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    launch(KernelCall{name_, reinterpret_cast<const void*>(kernel_), &invoke_closure<Closure>, &c}, grid_, block_,
           shared_);
  }

 private:
  const char* name_;
  void (*kernel_)(P...);
  dim3 grid_, block_;
  size_t shared_;
};

// The stream is accepted and ignored: emulated launches are synchronous, which satisfies any stream order.
template <typename... P, typename Stream>
Launch<P...> make_launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared, Stream&&) {
  return Launch<P...>(name, kernel, grid, block, shared);
}

template <typename T>
inline T& static_shared_object(const void* site) {
  return *static_cast<T*>(static_shared(site, sizeof(T), alignof(T)));
}

}  // namespace detail
}  // namespace islkd_emu

// ---- launch and dynamic shared memory (under nvcc: kernels/emu/launch.h) ----------------------------------------
#define ISLKD_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  ::islkd_emu::detail::make_launch(#kernel, kernel, grid, block, shared_bytes, stream)(__VA_ARGS__)
#define ISLKD_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::islkd_emu::detail::dynamic_shared())

// ---- barriers and warp intrinsics ------------------------------------------------------------------------------
// The call site (file:line) names the barrier: threads waiting at different __syncthreads() are a deadlock.
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::islkd_emu::detail::syncthreads(file, line);
}
inline int __syncthreads_count(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::islkd_emu::detail::syncthreads_reduce(0, p, file, line);
}
inline int __syncthreads_and(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::islkd_emu::detail::syncthreads_reduce(1, p, file, line);
}
inline int __syncthreads_or(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::islkd_emu::detail::syncthreads_reduce(2, p, file, line);
}

#define ISLKD_EMU_SITE const char *file = __builtin_FILE(), int line = __builtin_LINE()
#define ISLKD_EMU_WARP(op, mask, value, param, width) \
  ::islkd_emu::detail::warp_collective(::islkd_emu::detail::WarpOp::op, mask, value, param, width, file, line)

inline void __syncwarp(unsigned mask = 0xffffffffu, ISLKD_EMU_SITE) { ISLKD_EMU_WARP(Sync, mask, 0, 0, 32); }
inline unsigned __activemask() { return ::islkd_emu::detail::activemask(); }

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, ISLKD_EMU_SITE) {
  using namespace ::islkd_emu::detail;
  return from_bits<T>(ISLKD_EMU_WARP(Shfl, mask, to_bits(var), src_lane, width));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, ISLKD_EMU_SITE) {
  using namespace ::islkd_emu::detail;
  return from_bits<T>(ISLKD_EMU_WARP(ShflUp, mask, to_bits(var), static_cast<int>(delta), width));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, ISLKD_EMU_SITE) {
  using namespace ::islkd_emu::detail;
  return from_bits<T>(ISLKD_EMU_WARP(ShflDown, mask, to_bits(var), static_cast<int>(delta), width));
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, ISLKD_EMU_SITE) {
  using namespace ::islkd_emu::detail;
  return from_bits<T>(ISLKD_EMU_WARP(ShflXor, mask, to_bits(var), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int predicate, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(Ballot, mask, predicate != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int predicate, ISLKD_EMU_SITE) {
  return static_cast<int>(ISLKD_EMU_WARP(All, mask, predicate != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int predicate, ISLKD_EMU_SITE) {
  return static_cast<int>(ISLKD_EMU_WARP(Any, mask, predicate != 0, 0, 32));
}
template <typename T>
inline unsigned __match_any_sync(unsigned mask, T value, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(MatchAny, mask, ::islkd_emu::detail::to_bits(value), 0, 32));
}
template <typename T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred, ISLKD_EMU_SITE) {
  const unsigned r = static_cast<unsigned>(ISLKD_EMU_WARP(MatchAll, mask, ::islkd_emu::detail::to_bits(value), 0, 32));
  *pred = r != 0;
  return r;
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(ReduceAddU, mask, v, 0, 32));
}
inline int __reduce_add_sync(unsigned mask, int v, ISLKD_EMU_SITE) {
  return static_cast<int>(ISLKD_EMU_WARP(ReduceAddU, mask, static_cast<unsigned>(v), 0, 32));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(ReduceMinU, mask, v, 0, 32));
}
inline int __reduce_min_sync(unsigned mask, int v, ISLKD_EMU_SITE) {
  return static_cast<int>(ISLKD_EMU_WARP(ReduceMinI, mask, static_cast<unsigned>(v), 0, 32));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(ReduceMaxU, mask, v, 0, 32));
}
inline int __reduce_max_sync(unsigned mask, int v, ISLKD_EMU_SITE) {
  return static_cast<int>(ISLKD_EMU_WARP(ReduceMaxI, mask, static_cast<unsigned>(v), 0, 32));
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(ReduceAnd, mask, v, 0, 32));
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(ReduceOr, mask, v, 0, 32));
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, ISLKD_EMU_SITE) {
  return static_cast<unsigned>(ISLKD_EMU_WARP(ReduceXor, mask, v, 0, 32));
}
#undef ISLKD_EMU_WARP
#undef ISLKD_EMU_SITE

// ---- memory fences and atomics ---------------------------------------------------------------------------------
// Threads of one block share an OS thread; blocks run on several, so atomics are real (relaxed, as on a GPU).
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

namespace islkd_emu::detail {
template <typename T, typename F>
inline T atomic_update(T* address, F f) {  // CAS loop: returns the old value
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(address, &old, f(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename F>
inline float atomic_update_float(float* address, F f) {
  auto* bits = reinterpret_cast<unsigned*>(address);
  unsigned old = __atomic_load_n(bits, __ATOMIC_RELAXED);
  for (;;) {
    float o;
    std::memcpy(&o, &old, 4);
    const float n = f(o);
    unsigned nb;
    std::memcpy(&nb, &n, 4);
    if (__atomic_compare_exchange_n(bits, &old, nb, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return o;
  }
}
template <typename F>
inline double atomic_update_double(double* address, F f) {
  auto* bits = reinterpret_cast<unsigned long long*>(address);
  unsigned long long old = __atomic_load_n(bits, __ATOMIC_RELAXED);
  for (;;) {
    double o;
    std::memcpy(&o, &old, 8);
    const double n = f(o);
    unsigned long long nb;
    std::memcpy(&nb, &n, 8);
    if (__atomic_compare_exchange_n(bits, &old, nb, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return o;
  }
}
}  // namespace islkd_emu::detail

#define ISLKD_EMU_INTEGER_ATOMICS(T)                                                                         \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                      \
  inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }                      \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }                    \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                      \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                        \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                      \
  inline T atomicMax(T* a, T v) {                                                                           \
    return ::islkd_emu::detail::atomic_update(a, [v](T o) { return o < v ? v : o; });                       \
  }                                                                                                         \
  inline T atomicMin(T* a, T v) {                                                                           \
    return ::islkd_emu::detail::atomic_update(a, [v](T o) { return v < o ? v : o; });                       \
  }                                                                                                         \
  inline T atomicCAS(T* a, T compare, T v) {                                                                \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                 \
    return compare;                                                                                         \
  }
ISLKD_EMU_INTEGER_ATOMICS(int)
ISLKD_EMU_INTEGER_ATOMICS(unsigned int)
ISLKD_EMU_INTEGER_ATOMICS(unsigned long long)
ISLKD_EMU_INTEGER_ATOMICS(long long)
#undef ISLKD_EMU_INTEGER_ATOMICS

inline unsigned short atomicCAS(unsigned short* a, unsigned short compare, unsigned short v) {
  __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
inline float atomicAdd(float* a, float v) {
  return ::islkd_emu::detail::atomic_update_float(a, [v](float o) { return o + v; });
}
inline double atomicAdd(double* a, double v) {
  return ::islkd_emu::detail::atomic_update_double(a, [v](double o) { return o + v; });
}
inline float atomicExch(float* a, float v) {
  return ::islkd_emu::detail::atomic_update_float(a, [v](float) { return v; });
}
inline float atomicMax(float* a, float v) {  // sm_90 has float atomicMax/atomicMin
  return ::islkd_emu::detail::atomic_update_float(a, [v](float o) { return fmaxf(o, v); });
}
inline float atomicMin(float* a, float v) {
  return ::islkd_emu::detail::atomic_update_float(a, [v](float o) { return fminf(o, v); });
}
inline unsigned atomicInc(unsigned* a, unsigned limit) {
  return ::islkd_emu::detail::atomic_update(a, [limit](unsigned o) { return o >= limit ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {
  return ::islkd_emu::detail::atomic_update(a, [limit](unsigned o) { return (o == 0 || o > limit) ? limit : o - 1; });
}
// Scoped variants (sm_60+): on the CPU every atomic is system-wide.
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicExch_block atomicExch
#define atomicCAS_block atomicCAS

// ---- integer and float intrinsics ------------------------------------------------------------------------------
#define ISLKD_EMU_MINMAX(A, B, R)                                          \
  inline R min(A a, B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); } \
  inline R max(A a, B b) { return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(b) : static_cast<R>(a); }
ISLKD_EMU_MINMAX(int, int, int)
ISLKD_EMU_MINMAX(unsigned int, unsigned int, unsigned int)
ISLKD_EMU_MINMAX(int, unsigned int, unsigned int)
ISLKD_EMU_MINMAX(unsigned int, int, unsigned int)
ISLKD_EMU_MINMAX(long, long, long)
ISLKD_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
ISLKD_EMU_MINMAX(long long, long long, long long)
ISLKD_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
#undef ISLKD_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline int __mul24(int a, int b) { return (a << 8 >> 8) * (b << 8 >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}

inline float __int_as_float(int x) { return ::islkd_emu::detail::from_bits<float>(static_cast<unsigned>(x)); }
inline int __float_as_int(float x) { return static_cast<int>(::islkd_emu::detail::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return ::islkd_emu::detail::from_bits<float>(x); }
inline unsigned __float_as_uint(float x) { return static_cast<unsigned>(::islkd_emu::detail::to_bits(x)); }
inline double __longlong_as_double(long long x) {
  return ::islkd_emu::detail::from_bits<double>(static_cast<uint64_t>(x));
}
inline long long __double_as_longlong(double x) { return static_cast<long long>(::islkd_emu::detail::to_bits(x)); }

inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(nearbyintf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }

// The fast-math intrinsics are computed exactly; a kernel's tolerance covers the GPU's approximation error.
// glibc's <math.h> declares __expf, __logf, ... as extern "C"; these inline definitions are compatible with that.
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) {
  *s = sinf(x);
  *c = cosf(x);
}
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

// Include kernels/emu/launch.h after this header and it adds nothing: the emulator defined everything above.
