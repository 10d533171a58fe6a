// Stable ascending sort of float scores carrying uint32 values (instance indices) on CUDA, written by hand (no
// CUB): the ISL curriculum sorts every training instance by difficulty at each phase boundary. Same order as
// kernels/cpu/radix_sort.cpp: -0 -> +0, every NaN -> the canonical NaN 0x7FC00000 (after +inf); the keys are the
// order-preserving transform (negative: u ^ 0xFFFFFFFF, positive: u | 0x80000000), compared as unsigned.
//
// Algorithm: LSD radix sort, 4 passes of 8-bit digits. A transform kernel writes the keys; then per pass
//   1. histogram: block b counts the digits of its tile (kTile keys) in shared memory and writes count[d][b];
//   2. scan: one block turns the digit-major count[d][b] table into an exclusive prefix (where block b's keys
//      with digit d start), looping over the table with a carry, so any number of blocks works;
//   3. scatter: block b ranks its keys per digit in input order and writes each to prefix[d][b] + its rank.
// The last scatter writes the keys back as floats (the inverse transform) straight into keys_out.
// Stability: within a tile, warp w owns keys [w*kWarpKeys, (w+1)*kWarpKeys), handled in rounds of 32 in index
// order; __match_any_sync groups a round's lanes by digit, so a key's rank is the warp's running count for its
// digit plus the number of lower lanes with the same digit; per digit, warps are then offset in warp order and
// blocks in block order (the scan). Every key lands after every earlier key with the same digit: stable.
// Napkin math per pass: histogram reads 4 bytes/key, scatter reads 8 and writes 8 bytes/key (the writes are
// scattered over 256 runs per tile); 4 passes + transform ~ 84 bytes/key: 84 MB for 10^6 keys, tens of
// microseconds at HBM bandwidth. Temporary buffers (two key and two value arrays, the count table) come from the
// caching allocator. Passes whose digit is equal for all keys are not skipped (the CPU version does; here the
// skip would need a host round trip for at most 3 cheap passes).
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_temp.cuh"

namespace islkd::cuda {

namespace {

constexpr int kDigitBits = 8;
constexpr int kBuckets = 1 << kDigitBits;
constexpr int kPasses = 32 / kDigitBits;
// 256 threads = 8 warps x 8 keys per lane: 2048-key tiles keep the per-warp digit counters (8 x 256 x 4 bytes =
// 8 KiB) and the per-thread keys (8 keys, values and ranks in registers) small.
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kItems = 8;
constexpr int kWarpKeys = 32 * kItems;
constexpr int kTile = kThreads * kItems;
// The scan is one block of 256 threads, 8 table entries per thread per step.
constexpr int kScanThreads = 256;
constexpr int kScanItems = 8;
constexpr uint32_t kCanonicalNaN = 0x7FC00000u;
constexpr unsigned kFullWarp = 0xffffffffu;

__device__ __forceinline__ uint32_t float_to_key(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u)
    u = kCanonicalNaN;
  else if (u == 0x80000000u)
    u = 0u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float key_to_float(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

__global__ void to_keys_kernel(int64_t n, const float* __restrict__ in, uint32_t* __restrict__ keys) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    keys[i] = float_to_key(in[i]);
}

__global__ void histogram_kernel(int64_t n, int shift, const uint32_t* __restrict__ keys,
                                 uint32_t* __restrict__ counts) {
  __shared__ uint32_t hist[kBuckets];
  for (int d = threadIdx.x; d < kBuckets; d += blockDim.x) hist[d] = 0;
  __syncthreads();
  const int64_t begin = blockIdx.x * static_cast<int64_t>(kTile);
  const int64_t end = min(begin + kTile, n);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) atomicAdd(&hist[(keys[i] >> shift) & 0xFFu], 1u);
  __syncthreads();
  for (int d = threadIdx.x; d < kBuckets; d += blockDim.x)
    counts[d * static_cast<int64_t>(gridDim.x) + blockIdx.x] = hist[d];
}

// Exclusive scan over the block of one value per thread; *total gets the block's sum. Three barriers.
__device__ uint32_t block_exclusive_scan(uint32_t v, uint32_t* warp_sums, uint32_t* total) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  uint32_t inclusive = v;
  for (int o = 1; o < 32; o <<= 1) {
    const uint32_t up = __shfl_up_sync(kFullWarp, inclusive, o);
    if (lane >= static_cast<unsigned>(o)) inclusive += up;
  }
  if (lane == 31) warp_sums[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    uint32_t s = lane < nwarps ? warp_sums[lane] : 0u;
    for (int o = 1; o < 32; o <<= 1) {
      const uint32_t up = __shfl_up_sync(kFullWarp, s, o);
      if (lane >= static_cast<unsigned>(o)) s += up;
    }
    warp_sums[lane] = s;  // inclusive prefix of the warp totals
  }
  __syncthreads();
  const uint32_t before = warp > 0 ? warp_sums[warp - 1] : 0u;
  *total = warp_sums[nwarps - 1];
  __syncthreads();  // warp_sums is reused by the next call
  return before + inclusive - v;
}

// In place: table[i] <- sum of table[0..i). One block; loops over the table with a carry.
__global__ void scan_kernel(int64_t size, uint32_t* __restrict__ table) {
  __shared__ uint32_t warp_sums[32];
  uint32_t carry = 0;
  for (int64_t base = 0; base < size; base += static_cast<int64_t>(kScanThreads) * kScanItems) {
    const int64_t start = base + static_cast<int64_t>(threadIdx.x) * kScanItems;
    uint32_t local[kScanItems];
    uint32_t sum = 0;
    for (int k = 0; k < kScanItems; ++k) {
      local[k] = start + k < size ? table[start + k] : 0u;
      sum += local[k];
    }
    uint32_t step_total;
    uint32_t run = carry + block_exclusive_scan(sum, warp_sums, &step_total);
    for (int k = 0; k < kScanItems; ++k)
      if (start + k < size) {
        table[start + k] = run;
        run += local[k];
      }
    carry += step_total;
  }
}

// keys_out_u receives keys (passes 0..2) or keys_out_f the floats (last pass); the other is null.
__global__ void scatter_kernel(int64_t n, int shift, const uint32_t* __restrict__ keys_in,
                               const uint32_t* __restrict__ vals_in, const uint32_t* __restrict__ offsets,
                               uint32_t* __restrict__ keys_out_u, float* __restrict__ keys_out_f,
                               uint32_t* __restrict__ vals_out) {
  __shared__ uint32_t warp_counts[kWarps * kBuckets];
  for (int i = threadIdx.x; i < kWarps * kBuckets; i += blockDim.x) warp_counts[i] = 0;
  __syncthreads();

  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  uint32_t* my_counts = warp_counts + warp * kBuckets;
  const int64_t seg = blockIdx.x * static_cast<int64_t>(kTile) + warp * static_cast<int64_t>(kWarpKeys);
  uint32_t key[kItems], val[kItems], rank[kItems];
  for (int k = 0; k < kItems; ++k) {
    const int64_t i = seg + k * 32 + lane;
    const bool valid = i < n;
    key[k] = valid ? keys_in[i] : 0u;
    val[k] = valid ? vals_in[i] : 0u;
    const uint32_t d = (key[k] >> shift) & 0xFFu;
    // Lanes past the end take part with a digit no real key has, so the whole warp meets in every round.
    const uint32_t peers = __match_any_sync(kFullWarp, valid ? d : 0xFFFFFFFFu);
    const uint32_t base = valid ? my_counts[d] : 0u;
    rank[k] = base + static_cast<uint32_t>(__popc(peers & ((1u << lane) - 1u)));
    __syncwarp();  // every lane has read the counter before the leader bumps it
    if (valid && lane == static_cast<unsigned>(__ffs(peers) - 1)) my_counts[d] = base + __popc(peers);
    __syncwarp();
  }
  __syncthreads();

  // Per digit: the block's global start, then the warps in order.
  for (int d = threadIdx.x; d < kBuckets; d += blockDim.x) {
    uint32_t run = offsets[d * static_cast<int64_t>(gridDim.x) + blockIdx.x];
    for (int w = 0; w < kWarps; ++w) {
      const uint32_t c = warp_counts[w * kBuckets + d];
      warp_counts[w * kBuckets + d] = run;
      run += c;
    }
  }
  __syncthreads();

  for (int k = 0; k < kItems; ++k) {
    const int64_t i = seg + k * 32 + lane;
    if (i < n) {
      const uint32_t dst = my_counts[(key[k] >> shift) & 0xFFu] + rank[k];
      if (keys_out_f)
        keys_out_f[dst] = key_to_float(key[k]);
      else
        keys_out_u[dst] = key[k];
      vals_out[dst] = val[k];
    }
  }
}

}  // namespace

void radix_sort_pairs(int64_t n, const float* keys_in, const uint32_t* values_in, float* keys_out,
                      uint32_t* values_out) {
  ISLKD_CHECK(n >= 0, "radix_sort_pairs: negative element count ", n);
  ISLKD_CHECK(n <= 0xFFFFFFFFll, "radix_sort_pairs: ", n, " elements exceed the 32-bit ranks of the CUDA sort");
  if (n == 0) return;
  const int64_t blocks = ceil_div(n, kTile);
  detail::DeviceTemp<uint32_t> ka(n), kb(n), va(n), vb(n), counts(blocks * kBuckets);

  ISLKD_LAUNCH(to_keys_kernel, dim3(elementwise_blocks(n, kThreads)), dim3(kThreads), 0, compute_stream(), n,
               keys_in, ka.get());
  ISLKD_CUDA_CHECK_LAUNCH();
  // Ping-pong: pass 0 reads the caller's values, the last pass writes the caller's outputs.
  const uint32_t* kin = ka.get();
  const uint32_t* vin = values_in;
  for (int pass = 0; pass < kPasses; ++pass) {
    const bool last = pass == kPasses - 1;
    uint32_t* kout = pass % 2 == 0 ? kb.get() : ka.get();
    uint32_t* vout = last ? values_out : (pass % 2 == 0 ? vb.get() : va.get());
    const int shift = pass * kDigitBits;
    ISLKD_LAUNCH(histogram_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, compute_stream(), n,
                 shift, kin, counts.get());
    ISLKD_CUDA_CHECK_LAUNCH();
    ISLKD_LAUNCH(scan_kernel, dim3(1), dim3(kScanThreads), 0, compute_stream(), blocks * kBuckets, counts.get());
    ISLKD_CUDA_CHECK_LAUNCH();
    ISLKD_LAUNCH(scatter_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, compute_stream(), n, shift,
                 kin, vin, counts.get(), last ? nullptr : kout, last ? keys_out : nullptr, vout);
    ISLKD_CUDA_CHECK_LAUNCH();
    kin = kout;
    vin = vout;
  }
  // The temporaries go back to the allocator in compute-stream order (see sgd_update.cu).
}

}  // namespace islkd::cuda
