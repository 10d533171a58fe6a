// Stable ascending sort of float scores carrying uint32 values (instance indices), written by hand: the ISL
// curriculum sorts every training instance by difficulty at each phase boundary.
//
// Keys. Before anything else -0 becomes +0 and every NaN (any payload, either sign) the one canonical quiet NaN
// 0x7FC00000. The order-preserving transform then maps a float's bits u to
//   u ^ 0xFFFFFFFF   for negative floats (reverses their order and puts them below the positives)
//   u | 0x80000000   for positive floats
// so unsigned comparison of the keys is float order with -inf < ... < -0 == +0 < ... < +inf < NaN. The output keys
// are the canonicalised floats (the inverse transform), so callers never see -0 or a foreign NaN payload.
//
// Algorithm: LSD radix sort, 8-bit digits, 4 passes (histogram, exclusive scan, scatter), ping-ponging between
// two buffers. A pass whose digit is the same for every key is skipped (the digit counts do not change under
// permutation, so one counting sweep over the input decides all four passes). Scores from one snapshot often
// share their top bits, so 1-2 passes are commonly skipped.
// Stability with threads: the array is cut into fixed contiguous chunks (one per thread), each chunk counts its
// digits, and the scan runs over (digit, chunk) in that order, so chunk c's keys with digit d land after those
// of chunks < c and each chunk scatters its keys in input order. The chunking depends only on n and the thread
// count, and the result (a stable sort is unique) on neither.
// Napkin math per executed pass: read 8 bytes/element twice (count, scatter) and write 8 bytes/element; for
// 10^6 elements and 4 passes that is ~100 MB of traffic, a few milliseconds.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {

constexpr uint32_t kCanonicalNaN = 0x7FC00000u;
constexpr int kDigitBits = 8;
constexpr int kBuckets = 1 << kDigitBits;
constexpr int kPasses = 32 / kDigitBits;
// Below this many elements one thread sorts: a pass over 2^18 pairs takes well under a millisecond on one core,
// less than the barriers cost when the cores are shared (measured: 60000 keys 1.3 ms on one thread, tens of ms on
// two spinning threads of a loaded machine). The ISL sizes (CIFAR 50000, CINIC 90000) are in this range.
constexpr int64_t kParallelMin = 1 << 18;

inline uint32_t float_to_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u)
    u = kCanonicalNaN;
  else if (u == 0x80000000u)
    u = 0u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

inline float key_to_float(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint32_t digit(uint32_t key, int pass) { return (key >> (pass * kDigitBits)) & (kBuckets - 1); }

using Histogram = std::array<int64_t, kBuckets>;

}  // namespace

void radix_sort_pairs(int64_t n, const float* keys_in, const uint32_t* values_in, float* keys_out,
                      uint32_t* values_out) {
  ISLKD_CHECK(n >= 0, "radix_sort_pairs: negative element count ", n);
  if (n == 0) return;

  const int64_t nchunks = n < kParallelMin ? 1 : std::max(1, num_threads());
  const int64_t chunk = (n + nchunks - 1) / nchunks;
  auto chunk_begin = [&](int64_t c) { return std::min(n, c * chunk); };

  // Buffers are left uninitialised (each pass writes every element before it is read).
  std::unique_ptr<uint32_t[]> ka(new uint32_t[static_cast<size_t>(n)]), kb(new uint32_t[static_cast<size_t>(n)]);
  std::unique_ptr<uint32_t[]> va(new uint32_t[static_cast<size_t>(n)]), vb(new uint32_t[static_cast<size_t>(n)]);

  // Transform + the digit counts of every pass, per chunk (pass p of chunk c at counts[c * kPasses + p]).
  std::vector<Histogram> counts(static_cast<size_t>(nchunks * kPasses));
#pragma omp parallel for schedule(static, 1) if (nchunks > 1)
  for (int64_t c = 0; c < nchunks; ++c) {
    Histogram* h = &counts[static_cast<size_t>(c * kPasses)];
    for (int p = 0; p < kPasses; ++p) h[p].fill(0);
    for (int64_t i = chunk_begin(c), e = chunk_begin(c + 1); i < e; ++i) {
      const uint32_t k = float_to_key(keys_in[i]);
      ka[static_cast<size_t>(i)] = k;
      va[static_cast<size_t>(i)] = values_in[i];
      for (int p = 0; p < kPasses; ++p) ++h[p][digit(k, p)];
    }
  }

  bool first_executed = true;
  std::vector<Histogram> offsets(static_cast<size_t>(nchunks));
  for (int p = 0; p < kPasses; ++p) {
    // Skip a pass when one bucket holds every key (then the scatter would be the identity).
    bool trivial = false;
    for (int b = 0; b < kBuckets && !trivial; ++b) {
      int64_t total = 0;
      for (int64_t c = 0; c < nchunks; ++c) total += counts[static_cast<size_t>(c * kPasses + p)][b];
      trivial = total == n;
    }
    if (trivial) continue;

    // Per-chunk counts of this pass: from the first sweep while the data is still in input order, recounted
    // after a scatter has moved keys between chunks.
    if (!first_executed) {
#pragma omp parallel for schedule(static, 1) if (nchunks > 1)
      for (int64_t c = 0; c < nchunks; ++c) {
        Histogram& h = counts[static_cast<size_t>(c * kPasses + p)];
        h.fill(0);
        for (int64_t i = chunk_begin(c), e = chunk_begin(c + 1); i < e; ++i) ++h[digit(ka[static_cast<size_t>(i)], p)];
      }
    }
    first_executed = false;

    // Exclusive scan in (digit, chunk) order: this is what makes the parallel scatter stable.
    int64_t running = 0;
    for (int b = 0; b < kBuckets; ++b)
      for (int64_t c = 0; c < nchunks; ++c) {
        offsets[static_cast<size_t>(c)][b] = running;
        running += counts[static_cast<size_t>(c * kPasses + p)][b];
      }

#pragma omp parallel for schedule(static, 1) if (nchunks > 1)
    for (int64_t c = 0; c < nchunks; ++c) {
      Histogram& off = offsets[static_cast<size_t>(c)];
      for (int64_t i = chunk_begin(c), e = chunk_begin(c + 1); i < e; ++i) {
        const uint32_t k = ka[static_cast<size_t>(i)];
        const size_t dst = static_cast<size_t>(off[digit(k, p)]++);
        kb[dst] = k;
        vb[dst] = va[static_cast<size_t>(i)];
      }
    }
    std::swap(ka, kb);
    std::swap(va, vb);
  }

#pragma omp parallel for schedule(static) if (nchunks > 1)
  for (int64_t i = 0; i < n; ++i) {
    keys_out[i] = key_to_float(ka[static_cast<size_t>(i)]);
    values_out[i] = va[static_cast<size_t>(i)];
  }
}

}  // namespace islkd::cpu
