// Hand-written radix sort on CUDA (kernels/cuda/radix_sort.cu) under the emulator: against std::stable_sort with
// the specified order (-0 == +0, NaN after +inf, ties keep input order) and against the CPU radix sort, for
// N = 1, 2, 31, 1000, 65537 with ties, negatives, +-0, +-inf and NaNs of any payload.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::DeviceVec;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
const float kInf = std::numeric_limits<float>::infinity();

// The specified order with float comparisons (not bit tricks): NaN after everything, -0 == +0.
bool score_less(float a, float b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a < b;
}

// Scores with many ties (a few hundred distinct values), both signs, and every special value.
std::vector<float> awkward_scores(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) {
    const uint32_t r = rng() % 100;
    if (r < 3) x = -0.0f;
    else if (r < 6) x = 0.0f;
    else if (r < 8) x = kInf;
    else if (r < 10) x = -kInf;
    else if (r < 12) x = from_bits(0x7FC00000u | (rng() & 0xFFFFu));  // quiet NaNs with payloads
    else if (r < 13) x = from_bits(0xFF800001u);                         // negative signalling NaN
    else if (r < 14) x = std::numeric_limits<float>::denorm_min() * ((rng() & 1) ? 1.0f : -1.0f);
    else x = static_cast<float>(static_cast<int>(rng() % 400) - 200) * 0.37f;
  }
  return v;
}

void check(size_t n, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "n=" << n);
  const auto keys = awkward_scores(n, seed);
  std::vector<uint32_t> values(n);
  std::iota(values.begin(), values.end(), 0u);
  std::reverse(values.begin(), values.end());  // values are not the positions: the sort must carry them

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score_less(keys[a], keys[b]); });

  DeviceVec<float> dk(keys), dko(n);
  DeviceVec<uint32_t> dv(values), dvo(n);
  cuda::radix_sort_pairs(static_cast<int64_t>(n), dk.get(), dv.get(), dko.get(), dvo.get());
  const auto ko = dko.host();
  const auto vo = dvo.host();
  size_t bad = 0;
  for (size_t i = 0; i < n && bad < 5; ++i) {
    const float want = keys[order[i]];
    const uint32_t want_bits = std::isnan(want) ? 0x7FC00000u : (want == 0.0f ? 0u : bits(want));
    if (vo[i] != values[order[i]] || bits(ko[i]) != want_bits) {
      ADD_FAILURE() << "[" << i << "] got key " << ko[i] << " value " << vo[i] << ", expected key " << want
                    << " value " << values[order[i]];
      ++bad;
    }
  }

  std::vector<float> cpu_k(n);
  std::vector<uint32_t> cpu_v(n);
  cpu::radix_sort_pairs(static_cast<int64_t>(n), keys.data(), values.data(), cpu_k.data(), cpu_v.data());
  EXPECT_EQ(vo, cpu_v);
  EXPECT_EQ(0, std::memcmp(ko.data(), cpu_k.data(), n * sizeof(float)));
}

}  // namespace

TEST(RadixSortCuda, MatchesStableSortAtAwkwardSizes) {
  uint32_t seed = 1;
  for (size_t n : {size_t{1}, size_t{2}, size_t{31}, size_t{1000}, size_t{2048}, size_t{2049}}) check(n, ++seed);
}

TEST(RadixSortCuda, MatchesStableSortAt65537) { check(65537, 42); }

TEST(RadixSortCuda, NaNKeysSortLastAsCanonicalNaN) {
  const std::vector<float> keys = {from_bits(0xFFC12345u), 1.0f, kInf, from_bits(0x7F800001u), -kInf, -0.0f};
  DeviceVec<float> dk(keys), dko(keys.size());
  DeviceVec<uint32_t> dv(std::vector<uint32_t>{0, 1, 2, 3, 4, 5}), dvo(keys.size());
  cuda::radix_sort_pairs(static_cast<int64_t>(keys.size()), dk.get(), dv.get(), dko.get(), dvo.get());
  const auto ko = dko.host();
  EXPECT_EQ(dvo.host(), (std::vector<uint32_t>{4, 5, 1, 2, 0, 3}));
  EXPECT_EQ(bits(ko[1]), 0u);  // -0 came out as +0
  EXPECT_EQ(bits(ko[4]), 0x7FC00000u);
  EXPECT_EQ(bits(ko[5]), 0x7FC00000u);
}

TEST(RadixSortCuda, SortsInPlace) {
  auto keys = awkward_scores(3000, 9);
  std::vector<uint32_t> values(keys.size());
  std::iota(values.begin(), values.end(), 0u);
  std::vector<float> cpu_k(keys.size());
  std::vector<uint32_t> cpu_v(keys.size());
  cpu::radix_sort_pairs(static_cast<int64_t>(keys.size()), keys.data(), values.data(), cpu_k.data(), cpu_v.data());
  DeviceVec<float> dk(keys);
  DeviceVec<uint32_t> dv(values);
  cuda::radix_sort_pairs(static_cast<int64_t>(keys.size()), dk.get(), dv.get(), dk.get(), dv.get());
  EXPECT_EQ(dv.host(), cpu_v);
}
