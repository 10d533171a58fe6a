// CUDA channel ops for concat / split / ShuffleNet's channel shuffle: pure data movement, same semantics as
// kernels/cpu/channel_ops.cpp.
//
// Work split: one thread per moved element, grid-stride. The index arithmetic maps the destination element to its
// source (gather), so writes are coalesced and every output element is written exactly once; within a plane of HW
// floats consecutive threads read consecutive addresses too. Napkin math: 4 bytes read + 4 written per element.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda {

namespace {

// 256 threads: a multiple of the warp size; the grid-stride loop makes the exact value unimportant.
constexpr int kThreads = 256;

__global__ void channel_copy_kernel(int64_t total, int64_t HW, const float* __restrict__ src, int64_t src_C,
                                    int64_t src_c0, float* __restrict__ dst, int64_t dst_C, int64_t dst_c0,
                                    int64_t nc) {
  const int64_t run = nc * HW;  // contiguous floats per batch item
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / run, k = i % run;
    dst[(n * dst_C + dst_c0) * HW + k] = src[(n * src_C + src_c0) * HW + k];
  }
}

// y[n, j*G + g] = x[n, g*Cg + j]; inverse: y[n, g*Cg + j] = x[n, j*G + g].
__global__ void channel_shuffle_kernel(int64_t total, int64_t C, int64_t HW, int64_t G, const float* __restrict__ x,
                                       float* __restrict__ y, bool inverse) {
  const int64_t Cg = C / G;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = i % HW, c = (i / HW) % C, n = i / (C * HW);
    int64_t src_c;
    if (!inverse) {  // output channel c = j*G + g
      const int64_t j = c / G, g = c % G;
      src_c = g * Cg + j;
    } else {  // output channel c = g*Cg + j
      const int64_t g = c / Cg, j = c % Cg;
      src_c = j * G + g;
    }
    y[i] = x[(n * C + src_c) * HW + p];
  }
}

}  // namespace

void channel_copy(int64_t N, int64_t HW, const float* src, int64_t src_C, int64_t src_c0, float* dst,
                  int64_t dst_C, int64_t dst_c0, int64_t nc) {
  const int64_t total = N * nc * HW;
  if (total <= 0) return;
  ISLKD_LAUNCH(channel_copy_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0, compute_stream(),
               total, HW, src, src_C, src_c0, dst, dst_C, dst_c0, nc);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void channel_shuffle(int64_t N, int64_t C, int64_t HW, int64_t groups, const float* x, float* y, bool inverse) {
  const int64_t total = N * C * HW;
  if (total <= 0) return;
  ISLKD_CHECK(groups > 0 && C % groups == 0, "channel_shuffle: ", C, " channels do not split into ", groups,
              " groups");
  ISLKD_LAUNCH(channel_shuffle_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0,
               compute_stream(), total, C, HW, groups, x, y, inverse);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
