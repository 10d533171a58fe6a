// Warp and block reductions shared by the custom kernels (batch norm, pooling, softmax, losses). Fixed shuffle
// trees, so a reduction gives the same bits on every run; no atomics. Include after cuda_common.cuh.
#pragma once

namespace islkd::cuda::detail {

constexpr unsigned kFullWarp = 0xffffffffu;

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
// fmaxf semantics (a NaN loses to a number), like the CPU kernels' std::fmax.
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MinOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return b < a ? b : a; }
};

// Every lane of the warp gets op over the 32 lanes' values (butterfly: all lanes end with the same bits).
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(kFullWarp, v, offset));
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_sum(T v) { return warp_reduce(v, SumOp()); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, MaxOp()); }

// op over the whole block; every thread gets the result. blockDim.x must be a multiple of 32 (a full-mask shuffle
// in a partial warp is undefined on a GPU), and every thread of the block must call it (two barriers).
// `scratch` is __shared__ T[32] owned by the caller. Each warp reduces the per-warp partials itself in the same
// order, so no third barrier is needed to broadcast the result and every thread sees the same bits.
template <typename T, typename Op>
__device__ T block_reduce(T v, T identity, T* scratch, Op op) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? scratch[lane] : identity;
  r = warp_reduce(r, op);
  __syncthreads();  // the caller may reuse scratch right away
  return r;
}
template <typename T>
__device__ T block_sum(T v, T* scratch) { return block_reduce(v, T(0), scratch, SumOp()); }
__device__ inline float block_max(float v, float* scratch) { return block_reduce(v, -INFINITY, scratch, MaxOp()); }

}  // namespace islkd::cuda::detail
