// Test kernels for __syncthreads() and launch semantics under the emulator. Each one only gives the right answer
// if the threads of a block really interleave at barriers (a sequential or barrier-less emulator fails them).
// Also compiled by nvcc (sm_90) to keep them honest CUDA.
#include <stdexcept>

#include "kernels/emu/launch.h"
#include "tests/emu/emu_kernels.h"

namespace {

constexpr int kMaxBlock = 1024;

__global__ void block_reduce_sum_kernel(const float* x, float* block_sums, int n) {
  __shared__ float partial[kMaxBlock];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  partial[threadIdx.x] = i < n ? x[i] : 0.0f;
  __syncthreads();
  // blockDim.x need not be a power of two: fold the top half onto the bottom half, rounding up.
  for (unsigned active = blockDim.x; active > 1;) {
    const unsigned half = (active + 1) / 2;
    if (threadIdx.x < active - half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
    active = half;
  }
  if (threadIdx.x == 0) block_sums[blockIdx.x] = partial[0];
}

__global__ void reverse_in_block_kernel(const int* x, int* y, int n) {
  __shared__ int s[kMaxBlock];
  s[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  y[threadIdx.x] = s[n - 1 - threadIdx.x];  // thread 0 reads what thread n-1 wrote
}

constexpr int kTile = 32, kRows = 8;
__global__ void transpose_kernel(const float* in, float* out, int rows, int cols) {
  __shared__ float tile[kTile][kTile + 1];
  int x = blockIdx.x * kTile + threadIdx.x, y = blockIdx.y * kTile + threadIdx.y;
  for (int j = 0; j < kTile; j += kRows)
    if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * cols + x];
  __syncthreads();
  x = blockIdx.y * kTile + threadIdx.x;
  y = blockIdx.x * kTile + threadIdx.y;
  for (int j = 0; j < kTile; j += kRows)
    if (x < rows && y + j < cols) out[(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
}

__global__ void write_thread_ids_kernel(int* out) {
  const int block = blockIdx.x + gridDim.x * blockIdx.y;
  const int nthreads = blockDim.x * blockDim.y * blockDim.z;
  const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  int* o = out + 4 * (block * nthreads + t);
  o[0] = threadIdx.x;
  o[1] = threadIdx.y;
  o[2] = threadIdx.z;
  o[3] = blockIdx.x * 1000 + blockIdx.y;
}

__global__ void syncthreads_predicates_kernel(const int* pred, int* count, int* all, int* any) {
  const int p = pred[threadIdx.x];
  const int c = __syncthreads_count(p);
  const int a = __syncthreads_and(p);
  const int o = __syncthreads_or(p);
  if (threadIdx.x == blockDim.x - 1) *count = c, *all = a, *any = o;
}

__global__ void early_return_kernel(int* out, int n) {
  if (static_cast<int>(threadIdx.x) >= n / 2) return;
  out[threadIdx.x] = 1;
  __syncthreads();
  out[threadIdx.x] = 2;
}

__global__ void two_barriers_kernel(int* out, int n) {
  if (threadIdx.x % 2 == 0) {
    out[threadIdx.x] = 1;
    __syncthreads();
  } else {
    out[threadIdx.x] = 2;
    __syncthreads();
  }
}

__global__ void throw_kernel(int thrower) {
#if defined(ISLKD_EMU)
  if (static_cast<int>(threadIdx.x) == thrower) throw std::logic_error("thrown by a kernel thread");
#endif
  __syncthreads();
}

__global__ void barrier_in_loop_kernel(const int* x, long long* out, int rounds) {
  // Each round every thread adds its right neighbour's value of the previous round: needs two barriers a round.
  __shared__ long long v[kMaxBlock];
  const int n = blockDim.x;
  v[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  for (int r = 0; r < rounds; ++r) {
    const long long next = v[threadIdx.x] + v[(threadIdx.x + 1) % n];
    __syncthreads();
    v[threadIdx.x] = next;
    __syncthreads();
  }
  out[threadIdx.x] = v[threadIdx.x];
}

#if defined(ISLKD_EMU)  // dynamic parallelism would need -rdc under nvcc; the emulator rejects it
__global__ void child_kernel() {}
__global__ void parent_kernel() { ISLKD_LAUNCH(child_kernel, 1, 1, 0, 0); }
#else
__global__ void parent_kernel() {}
#endif

__global__ void grid_stride_fill_kernel(int* out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&out[i], i + 1);
}

__global__ void missing_barrier_kernel(int* out) {
  // Racy on purpose: reads the left neighbour's shared value with no __syncthreads() in between.
  __shared__ int s[kMaxBlock];
  s[threadIdx.x] = static_cast<int>(threadIdx.x) + 1;
  out[blockIdx.x * blockDim.x + threadIdx.x] = threadIdx.x > 0 ? s[threadIdx.x - 1] : 0;
}

template <typename T, int kMul>
__global__ void multiply_kernel(T* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= static_cast<T>(kMul);
}

__global__ void dynamic_touch_kernel(size_t bytes) {
  ISLKD_DYNAMIC_SHARED(float, s);
  if (threadIdx.x == 0 && bytes >= sizeof(float)) s[bytes / sizeof(float) - 1] = 1.0f;
}

}  // namespace

namespace emu_test {

void block_reduce_sum(const float* x, float* block_sums, int n, int block) {
  const int grid = (n + block - 1) / block;
  ISLKD_LAUNCH(block_reduce_sum_kernel, grid, block, 0, 0, x, block_sums, n);
}

void reverse_in_block(const int* x, int* y, int n) { ISLKD_LAUNCH(reverse_in_block_kernel, 1, n, 0, 0, x, y, n); }

void transpose(const float* in, float* out, int rows, int cols) {
  const dim3 grid((cols + kTile - 1) / kTile, (rows + kTile - 1) / kTile);
  ISLKD_LAUNCH(transpose_kernel, grid, dim3(kTile, kRows), 0, 0, in, out, rows, cols);
}

void write_thread_ids(int* out, int grid_x, int grid_y, int block_x, int block_y, int block_z) {
  ISLKD_LAUNCH(write_thread_ids_kernel, dim3(grid_x, grid_y), dim3(block_x, block_y, block_z), 0, 0, out);
}

void syncthreads_predicates(const int* pred, int* count, int* all, int* any, int n) {
  ISLKD_LAUNCH(syncthreads_predicates_kernel, 1, n, 0, 0, pred, count, all, any);
}

void early_return_before_barrier(int* out, int n) { ISLKD_LAUNCH(early_return_kernel, 1, n, 0, 0, out, n); }

void two_different_barriers(int* out, int n) { ISLKD_LAUNCH(two_barriers_kernel, 1, n, 0, 0, out, n); }

void throw_in_thread(int n, int thrower) { ISLKD_LAUNCH(throw_kernel, 2, n, 0, 0, thrower); }

void barrier_in_loop(const int* x, long long* out, int n, int rounds) {
  ISLKD_LAUNCH(barrier_in_loop_kernel, 1, n, 0, 0, x, out, rounds);
}

void missing_barrier(int* out, int grid, int block) { ISLKD_LAUNCH(missing_barrier_kernel, grid, block, 0, 0, out); }

void multiply_template(double* x, int n) {
  // A template-id with a comma goes in parentheses; the same line builds under nvcc.
  ISLKD_LAUNCH((multiply_kernel<double, 3>), (n + 31) / 32, 32, 0, 0, x, n);
}

void launch_from_kernel() { ISLKD_LAUNCH(parent_kernel, 1, 1, 0, 0); }

void grid_stride_fill(int* out, int n, int grid, int block) {
  ISLKD_LAUNCH(grid_stride_fill_kernel, grid, block, 0, 0, out, n);
}

void launch_config(int grid, int block_x, int block_y, int block_z, size_t dynamic_bytes) {
  ISLKD_LAUNCH(dynamic_touch_kernel, grid, dim3(block_x, block_y, block_z), dynamic_bytes, 0, dynamic_bytes);
}

void opt_in_dynamic_shared(size_t bytes) {
#if defined(ISLKD_EMU)
  islkd_emu::set_max_dynamic_shared_bytes(reinterpret_cast<const void*>(&dynamic_touch_kernel), bytes);
#else
  cudaFuncSetAttribute(dynamic_touch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
#endif
  ISLKD_LAUNCH(dynamic_touch_kernel, 1, 32, bytes, 0, bytes);
}

}  // namespace emu_test
