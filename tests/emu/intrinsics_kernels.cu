// Test kernel for the math and bit intrinsics the emulator provides (one thread evaluates them all); also compiled
// by nvcc (sm_90), which keeps the list honest CUDA.
#include "kernels/emu/launch.h"
#include "tests/emu/emu_kernels.h"

namespace {

__global__ void intrinsics_kernel(const float* x, float* f, int* i) {
  const float a = x[0], b = x[1], nan = x[2], inf = x[3];  // 2, 0.5, NaN, +inf
  f[0] = __expf(a);
  f[1] = __logf(a);
  f[2] = __fdividef(a, b);
  f[3] = rsqrtf(a * a);
  f[4] = __frcp_rn(b);
  f[5] = fmaxf(a, b) + fminf(a, b);
  f[6] = __fmaf_rn(a, b, 1.0f);
  f[7] = __saturatef(a) + __saturatef(-a) + __saturatef(b);
  f[8] = __uint_as_float(__float_as_uint(a));
  f[9] = __int_as_float(__float_as_int(b));
  f[10] = max(a, b) - min(a, b);
  f[11] = __ldg(x + 1);
  f[12] = expf(b) * logf(a) + sqrtf(a) + __powf(a, 3.0f) + tanhf(b) + __sinf(b) + __cosf(b);
  i[0] = isnan(nan) + 2 * isinf(inf) + 4 * isnan(a) + 8 * isinf(a);
  i[1] = __popc(0xf0f0u);
  i[2] = __clz(1);
  i[3] = __ffs(8);
  i[4] = min(-3, 7) + max(-3, 7);
  i[5] = static_cast<int>(min(3u, 7u) + max(3u, 7u));
  i[6] = __float2int_rn(2.5f) + 10 * __float2int_rz(-2.7f);
  i[7] = static_cast<int>(__brev(1u) >> 28);
  i[8] = __popcll(0xffffffffffull) + __clzll(1ll);
  i[9] = __mulhi(1 << 30, 8) + __umulhi(0x80000000u, 4u);
}

}  // namespace

namespace emu_test {

void intrinsics(const float* x, float* f, int* i) { ISLKD_LAUNCH(intrinsics_kernel, 1, 1, 0, 0, x, f, i); }

}  // namespace emu_test
