// Test kernels for shared memory under the emulator: dynamic and static together, per-block isolation, limits,
// overruns that AddressSanitizer must see, and the barrier benchmark. Also compiled by nvcc (sm_90).
#include "kernels/emu/launch.h"
#include "tests/emu/emu_kernels.h"

namespace {

__global__ void dynamic_and_static_shared_kernel(const float* x, float* y, int n) {
  // y[i] = x[i] + (sum of the block's x) * scale, where scale lives in static shared memory.
  ISLKD_DYNAMIC_SHARED(float, vals);  // blockDim.x floats
  __shared__ float total;
  __shared__ float scale[2];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  vals[threadIdx.x] = i < n ? x[i] : 0.0f;
  if (threadIdx.x == 0) scale[1] = 0.5f;
  __syncthreads();
  if (threadIdx.x == blockDim.x - 1) {
    float s = 0;
    for (unsigned t = 0; t < blockDim.x; ++t) s += vals[t];
    total = s;
  }
  __syncthreads();
  if (i < n) y[i] = vals[threadIdx.x] + total * scale[1];
}

__global__ void dynamic_overrun_kernel(int n) {
  ISLKD_DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) s[n] = 2.0f;  // n floats were requested: one past the end
}

__global__ void static_overrun_kernel(int n) {
  __shared__ float s[64];
  s[threadIdx.x % 64] = 1.0f;
  __syncthreads();
  float* p = s;  // through a pointer, so only ASan (not UBSan's array bounds check) can see the overrun
  if (threadIdx.x == 0) p[n] = p[0] + 1.0f;
}

__global__ void shared_is_per_block_kernel(int* out) {
  // Every block counts its own threads in shared memory; a shared counter across blocks would over-count.
  __shared__ int count;
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  atomicAdd(&count, 1);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = count;
}

__global__ void static_shared_too_large_kernel() {
  __shared__ float big[10 * 1024];  // 40 KiB
  ISLKD_DYNAMIC_SHARED(float, dyn);
  big[threadIdx.x] = 1.0f;
  dyn[threadIdx.x] = big[threadIdx.x];
}

__global__ void barrier_benchmark_kernel(float* out) {
  __shared__ float s[1024];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s[blockDim.x - 1];
}

__global__ void elementwise_benchmark_kernel(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = 2.0f * x[i];
}

}  // namespace

namespace emu_test {

void dynamic_and_static_shared(const float* x, float* y, int n, int block) {
  const int grid = (n + block - 1) / block;
  ISLKD_LAUNCH(dynamic_and_static_shared_kernel, grid, block, block * sizeof(float), 0, x, y, n);
}

void dynamic_shared_overrun(int n) { ISLKD_LAUNCH(dynamic_overrun_kernel, 1, n, n * sizeof(float), 0, n); }

void static_shared_overrun(int n) { ISLKD_LAUNCH(static_overrun_kernel, 1, 32, 0, 0, n); }

void shared_is_per_block(int* out, int grid, int block) {
  ISLKD_LAUNCH(shared_is_per_block_kernel, grid, block, 0, 0, out);
}

void static_shared_too_large() { ISLKD_LAUNCH(static_shared_too_large_kernel, 1, 32, 16 * 1024, 0); }

void elementwise_benchmark(const float* x, float* y, int n) {
  ISLKD_LAUNCH(elementwise_benchmark_kernel, (n + 255) / 256, 256, 0, 0, x, y, n);
}

void barrier_benchmark(float* out, int grid, int block) {
  ISLKD_LAUNCH(barrier_benchmark_kernel, grid, block, 0, 0, out);
}

}  // namespace emu_test
