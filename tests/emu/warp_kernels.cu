// Test kernels for the warp intrinsics under the emulator: a shuffle that returned the caller's own value, or a
// __syncwarp that did not wait, would give wrong answers here. Also compiled by nvcc (sm_90).
#include "kernels/emu/launch.h"
#include "tests/emu/emu_kernels.h"

namespace {

constexpr unsigned kFull = 0xffffffffu;

__global__ void warp_reduce_down_kernel(const float* x, float* warp_sums, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? x[i] : 0.0f;
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFull, v, offset);
  if (threadIdx.x % 32 == 0) warp_sums[i / 32] = v;
}

__global__ void warp_reduce_xor_kernel(const int* x, int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  int v = i < n ? x[i] : 0;
  for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(kFull, v, mask);
  if (i < n) out[i] = v;
}

__global__ void shuffle_patterns_kernel(const int* x, int* idx_out, int* up_out, int* down_out, int* xor_out,
                                        int width, int delta) {
  const int v = x[threadIdx.x];
  idx_out[threadIdx.x] = __shfl_sync(kFull, v, delta, width);
  up_out[threadIdx.x] = __shfl_up_sync(kFull, v, delta, width);
  down_out[threadIdx.x] = __shfl_down_sync(kFull, v, delta, width);
  xor_out[threadIdx.x] = __shfl_xor_sync(kFull, v, delta, width);
}

__global__ void ballot_any_all_kernel(const int* pred, unsigned* ballot, int* any, int* all) {
  const int p = pred[threadIdx.x];
  const unsigned b = __ballot_sync(kFull, p);
  const int y = __any_sync(kFull, p);
  const int a = __all_sync(kFull, p);
  if (threadIdx.x % 32 == 0) {
    ballot[threadIdx.x / 32] = b;
    any[threadIdx.x / 32] = y;
    all[threadIdx.x / 32] = a;
  }
}

__global__ void syncwarp_neighbour_kernel(const int* x, int* y) {
  __shared__ int s[32];
  const int lane = threadIdx.x;
  s[lane] = x[lane] * 10;
  __syncwarp();
  y[lane] = s[(lane + 1) % 32];  // lane 31 reads lane 0; lane 0 reads lane 1, written after it in program order
}

__global__ void match_and_reduce_kernel(const int* x, unsigned* match_any, int* reduce_add, int* reduce_max) {
  const int v = x[threadIdx.x];
  match_any[threadIdx.x] = __match_any_sync(kFull, v);
  reduce_add[threadIdx.x] = __reduce_add_sync(kFull, v);
  reduce_max[threadIdx.x] = __reduce_max_sync(kFull, v);
}

__global__ void shuffle_double_and_ll_kernel(const double* x, double* yd, long long* yl) {
  const double d = x[threadIdx.x];
  const long long l = static_cast<long long>(d * 1e12);
  yd[threadIdx.x] = __shfl_sync(kFull, d, 31 - threadIdx.x);
  yl[threadIdx.x] = __shfl_xor_sync(kFull, l, 1);
}

__global__ void warp_vs_block_barrier_kernel() {
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    float v = __shfl_down_sync(kFull, 1.0f, 1);
    (void)v;
  }
}

__global__ void half_warp_shuffles_kernel(const int* x, int* out) {
  // Lanes 0-15 and 16-31 shuffle among themselves with disjoint masks, the upper half only after a detour.
  const int lane = threadIdx.x;
  int v = x[lane];
  if (lane < 16) {
    v = __shfl_sync(0x0000ffffu, v, 15 - lane);
  } else {
    v *= 2;
    v = __shfl_sync(0xffff0000u, v, 47 - lane);
  }
  out[lane] = v;
}

__global__ void ballot_after_early_exit_kernel(unsigned* out, int keep) {
  // Lanes >= keep return while the others already wait in the ballot: the ballot completes without them.
  if (static_cast<int>(threadIdx.x) >= keep) return;
  const unsigned b = __ballot_sync(kFull, 1);
  if (threadIdx.x == 0) *out = b;
}

}  // namespace

namespace emu_test {

void warp_reduce_down(const float* x, float* warp_sums, int n) {
  const int block = 128, grid = (n + block - 1) / block;
  ISLKD_LAUNCH(warp_reduce_down_kernel, grid, block, 0, 0, x, warp_sums, n);
}

void warp_reduce_xor(const int* x, int* out, int n) {
  const int block = 64, grid = (n + block - 1) / block;
  ISLKD_LAUNCH(warp_reduce_xor_kernel, grid, block, 0, 0, x, out, n);
}

void shuffle_patterns(const int* x, int* idx_out, int* up_out, int* down_out, int* xor_out, int width, int delta) {
  ISLKD_LAUNCH(shuffle_patterns_kernel, 1, 32, 0, 0, x, idx_out, up_out, down_out, xor_out, width, delta);
}

void ballot_any_all(const int* pred, unsigned* ballot, int* any, int* all, int n) {
  ISLKD_LAUNCH(ballot_any_all_kernel, 1, n, 0, 0, pred, ballot, any, all);
}

void syncwarp_neighbour(const int* x, int* y, int n) { ISLKD_LAUNCH(syncwarp_neighbour_kernel, 1, n, 0, 0, x, y); }

void match_and_reduce(const int* x, unsigned* match_any, int* reduce_add, int* reduce_max, int n) {
  ISLKD_LAUNCH(match_and_reduce_kernel, 1, n, 0, 0, x, match_any, reduce_add, reduce_max);
}

void shuffle_double_and_ll(const double* x, double* yd, long long* yl) {
  ISLKD_LAUNCH(shuffle_double_and_ll_kernel, 1, 32, 0, 0, x, yd, yl);
}

void warp_waits_for_block_barrier() { ISLKD_LAUNCH(warp_vs_block_barrier_kernel, 1, 32, 0, 0); }

void ballot_after_early_exit(unsigned* out, int keep) {
  ISLKD_LAUNCH(ballot_after_early_exit_kernel, 1, 32, 0, 0, out, keep);
}

void half_warp_shuffles(const int* x, int* out) { ISLKD_LAUNCH(half_warp_shuffles_kernel, 1, 32, 0, 0, x, out); }

}  // namespace emu_test
