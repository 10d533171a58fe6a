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

// Fills its static and dynamic shared memory, so a later launch could see the values if memory were reused as is.
__global__ void fill_shared_kernel(float* out) {
  __shared__ float s[32];
  ISLKD_DYNAMIC_SHARED(float, d);
  s[threadIdx.x] = 1.0f;
  d[threadIdx.x] = 2.0f;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[31 - threadIdx.x] + d[31 - threadIdx.x];
}

// Reads static (float and int) and dynamic shared memory before any write: under the emulator every byte is 0xff.
__global__ void read_uninitialised_shared_kernel(float* static_out, int* static_int_out, float* dynamic_out) {
  __shared__ float s[32];
  __shared__ int si[32];
  ISLKD_DYNAMIC_SHARED(float, d);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  static_out[i] = s[threadIdx.x];
  static_int_out[i] = si[threadIdx.x];
  dynamic_out[i] = d[threadIdx.x];
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

void read_uninitialised_shared(float* static_out, int* static_int_out, float* dynamic_out, int grid) {
  // 32 threads per block, 32 floats of dynamic shared memory; the outputs hold grid * 32 values.
  ISLKD_LAUNCH(fill_shared_kernel, grid, 32, 32 * sizeof(float), 0, dynamic_out);
  ISLKD_LAUNCH(read_uninitialised_shared_kernel, grid, 32, 32 * sizeof(float), 0, static_out, static_int_out,
               dynamic_out);
}

void elementwise_benchmark(const float* x, float* y, int n) {
  ISLKD_LAUNCH(elementwise_benchmark_kernel, (n + 255) / 256, 256, 0, 0, x, y, n);
}

void barrier_benchmark(float* out, int grid, int block) {
  ISLKD_LAUNCH(barrier_benchmark_kernel, grid, block, 0, 0, out);
}

}  // namespace emu_test
