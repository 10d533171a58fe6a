// CUDA average pooling (square window, NCHW), same semantics as kernels/cpu/avg_pool2d.cpp: PyTorch's defaults
// count_include_pad=true and ceil_mode=false, so every window divides by kernel*kernel.
//
// Work split: forward, one thread per output element; backward is a gather, one thread per input element summing
// dy/(k*k) over the outputs whose window covers it, in output order -- no atomics, deterministic, and the same
// additions in the same order as the CPU's scatter, so dx matches it bit for bit.
// Napkin math: forward reads k*k inputs per output (mostly L1/L2 hits) and writes 4 bytes; backward reads
// ~(k/stride)^2 dy values per input and writes 4 bytes. Memory-bound.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda {

namespace {

// 256 threads: a multiple of the warp size with enough warps per block to hide the window's load latency.
constexpr int kThreads = 256;

__global__ void avg_pool2d_forward_kernel(Pool2dShape s, int64_t OH, int64_t OW, int64_t total, float inv,
                                          const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < total;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = o % OW, oh = (o / OW) % OH, plane = o / (OH * OW);
    const float* xp = x + plane * s.H * s.W;
    const int64_t h0 = max(oh * s.stride - s.pad, int64_t(0)), h1 = min(oh * s.stride - s.pad + s.kernel, s.H);
    const int64_t w0 = max(ow * s.stride - s.pad, int64_t(0)), w1 = min(ow * s.stride - s.pad + s.kernel, s.W);
    float sum = 0.0f;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) sum += xp[h * s.W + w];
    y[o] = sum * inv;
  }
}

// Outputs whose window [o*stride - pad, o*stride - pad + kernel) covers input coordinate i: [lo, hi).
__device__ __forceinline__ void covering(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t out,
                                         int64_t* lo, int64_t* hi) {
  const int64_t a = i + pad - kernel + 1;  // o*stride >= a
  *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  *hi = min((i + pad) / stride + 1, out);
}

__global__ void avg_pool2d_backward_kernel(Pool2dShape s, int64_t OH, int64_t OW, int64_t total, float inv,
                                           const float* __restrict__ dy, float* __restrict__ dx) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t w = i % s.W, h = (i / s.W) % s.H, plane = i / (s.H * s.W);
    int64_t oh0, oh1, ow0, ow1;
    covering(h, s.stride, s.pad, s.kernel, OH, &oh0, &oh1);
    covering(w, s.stride, s.pad, s.kernel, OW, &ow0, &ow1);
    const float* gp = dy + plane * OH * OW;
    float sum = 0.0f;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) sum += gp[oh * OW + ow] * inv;
    dx[i] = sum;
  }
}

}  // namespace

void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  const int64_t total = s.N * s.C * s.OH() * s.OW();
  if (total <= 0) return;
  const float inv = 1.0f / static_cast<float>(s.kernel * s.kernel);
  ISLKD_LAUNCH(avg_pool2d_forward_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0,
               compute_stream(), s, s.OH(), s.OW(), total, inv, x, y);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx) {
  const int64_t total = s.N * s.C * s.H * s.W;
  if (total <= 0) return;
  const float inv = 1.0f / static_cast<float>(s.kernel * s.kernel);
  ISLKD_LAUNCH(avg_pool2d_backward_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0,
               compute_stream(), s, s.OH(), s.OW(), total, inv, dy, dx);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
