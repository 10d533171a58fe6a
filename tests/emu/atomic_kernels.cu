// Test kernels for atomics on global and shared memory under the emulator: heavy contention from many blocks
// (which run on several OS threads) must still give exact integer results. Also compiled by nvcc (sm_90).
#include "kernels/emu/launch.h"
#include "tests/emu/emu_kernels.h"

namespace {

__global__ void atomics_global_kernel(int* counter, unsigned* umax, int* imin, unsigned long long* big, float* fsum) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(counter, 1);
  atomicMax(umax, i);
  atomicMin(imin, -static_cast<int>(i));
  atomicAdd(big, 1ull << 33);
  atomicAdd(fsum, 1.0f);  // exact while the total stays below 2^24
}

__global__ void atomics_shared_kernel(const int* keys, int* histogram, int n, int bins) {
  ISLKD_DYNAMIC_SHARED(int, local);
  for (int b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&local[keys[i]], 1);
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += blockDim.x) atomicAdd(&histogram[b], local[b]);
}

__global__ void atomic_cas_lock_kernel(int* lock_word, int* value) {
  // One thread per block takes a spin lock around a non-atomic read-modify-write.
  if (threadIdx.x != 0) return;
  while (atomicCAS(lock_word, 0, 1) != 0) {
  }
  __threadfence();
  *value = *value + 1;
  __threadfence();
  atomicExch(lock_word, 0);
}

__global__ void atomic_exch_sub_inc_kernel(int* sub, unsigned* inc, unsigned* dec, int* exch_seen) {
  atomicSub(sub, 3);
  atomicInc(inc, 9u);  // wraps to 0 after 9
  atomicDec(dec, 9u);
  const int old = atomicExch(&exch_seen[0], static_cast<int>(threadIdx.x) + 1);
  atomicAdd(&exch_seen[1 + old], 1);  // every value but the last one written is seen exactly once
}

}  // namespace

namespace emu_test {

void atomics_global(int* counter, unsigned* umax, int* imin, unsigned long long* big, float* fsum, int grid,
                    int block) {
  ISLKD_LAUNCH(atomics_global_kernel, grid, block, 0, 0, counter, umax, imin, big, fsum);
}

void atomics_shared(const int* keys, int* histogram, int n, int bins) {
  ISLKD_LAUNCH(atomics_shared_kernel, 8, 96, bins * sizeof(int), 0, keys, histogram, n, bins);
}

void atomic_cas_lock(int* lock_word, int* value, int grid) {
  ISLKD_LAUNCH(atomic_cas_lock_kernel, grid, 32, 0, 0, lock_word, value);
}

void atomic_exch_sub_inc(int* sub, unsigned* inc, unsigned* dec, int* exch_seen, int n) {
  ISLKD_LAUNCH(atomic_exch_sub_inc_kernel, 1, n, 0, 0, sub, inc, dec, exch_seen);
}

}  // namespace emu_test
