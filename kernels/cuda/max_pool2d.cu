// CUDA max pooling (square window, NCHW), same semantics as kernels/cpu/max_pool2d.cpp: padding counts as -inf,
// the first maximum in row-major window order wins, a NaN wins and stops the scan (PyTorch), and the forward
// saves the argmax as an int32 index within the input plane.
//
// Work split: forward, one thread per output element (grid-stride over N*C*OH*OW). Backward is a gather, one
// thread per input element: it visits the outputs whose window covers it, in output order, and adds dy where the
// saved argmax points at it. No atomics (a scatter with float atomicAdd would make dx depend on timing), and the
// additions happen in the CPU's order, so dx matches the CPU bit for bit.
// Napkin math: forward reads k*k inputs per output (cached: each input is read ~(k/stride)^2 times, from L1/L2)
// and writes 8 bytes per output; backward reads 8 bytes per covering output and writes 4 bytes per input.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::cuda {

namespace {

// 256 threads: a multiple of the warp size with enough warps per block to hide the window's load latency.
constexpr int kThreads = 256;

__global__ void max_pool2d_forward_kernel(Pool2dShape s, int64_t OH, int64_t OW, int64_t total,
                                          const float* __restrict__ x, float* __restrict__ y,
                                          int32_t* __restrict__ argmax) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < total;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = o % OW, oh = (o / OW) % OH, plane = o / (OH * OW);
    const float* xp = x + plane * s.H * s.W;
    const int64_t h0 = max(oh * s.stride - s.pad, int64_t(0)), h1 = min(oh * s.stride - s.pad + s.kernel, s.H);
    const int64_t w0 = max(ow * s.stride - s.pad, int64_t(0)), w1 = min(ow * s.stride - s.pad + s.kernel, s.W);
    float best = -INFINITY;
    int64_t best_i = h0 * s.W + w0;
    bool found_nan = false;
    for (int64_t h = h0; h < h1 && !found_nan; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const float v = xp[h * s.W + w];
        if (v > best || isnan(v)) {
          best = v;
          best_i = h * s.W + w;
          if (isnan(v)) {
            found_nan = true;
            break;
          }
        }
      }
    y[o] = best;
    argmax[o] = static_cast<int32_t>(best_i);
  }
}

// Outputs whose window [o*stride - pad, o*stride - pad + kernel) covers input coordinate i: [lo, hi).
__device__ __forceinline__ void covering(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t out,
                                         int64_t* lo, int64_t* hi) {
  const int64_t a = i + pad - kernel + 1;  // o*stride >= a
  *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  *hi = min((i + pad) / stride + 1, out);
}

__global__ void max_pool2d_backward_kernel(Pool2dShape s, int64_t OH, int64_t OW, int64_t total,
                                           const float* __restrict__ dy, const int32_t* __restrict__ argmax,
                                           float* __restrict__ dx) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t w = i % s.W, h = (i / s.W) % s.H, plane = i / (s.H * s.W);
    const int32_t me = static_cast<int32_t>(h * s.W + w);
    int64_t oh0, oh1, ow0, ow1;
    covering(h, s.stride, s.pad, s.kernel, OH, &oh0, &oh1);
    covering(w, s.stride, s.pad, s.kernel, OW, &ow0, &ow1);
    const float* gp = dy + plane * OH * OW;
    const int32_t* ap = argmax + plane * OH * OW;
    float sum = 0.0f;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow)
        if (ap[oh * OW + ow] == me) sum += gp[oh * OW + ow];
    dx[i] = sum;
  }
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  const int64_t total = s.N * s.C * s.OH() * s.OW();
  if (total <= 0) return;
  ISLKD_LAUNCH(max_pool2d_forward_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0,
               compute_stream(), s, s.OH(), s.OW(), total, x, y, argmax);
  ISLKD_CUDA_CHECK_LAUNCH();
}

void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t total = s.N * s.C * s.H * s.W;
  if (total <= 0) return;
  ISLKD_LAUNCH(max_pool2d_backward_kernel, dim3(elementwise_blocks(total, kThreads)), dim3(kThreads), 0,
               compute_stream(), s, s.OH(), s.OW(), total, dy, argmax, dx);
  ISLKD_CUDA_CHECK_LAUNCH();
}

}  // namespace islkd::cuda
