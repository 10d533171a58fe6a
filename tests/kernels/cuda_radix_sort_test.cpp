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
#include "tests/kernels/radix_sort_reference.h"

using namespace islkd;
using namespace islkd::test;

namespace {

void check(size_t n, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "n=" << n);
  const auto keys = mixed_keys(n, seed);
  std::vector<uint32_t> values(n);
  std::iota(values.begin(), values.end(), 0u);
  std::reverse(values.begin(), values.end());  // values are not the positions: the sort must carry them
  std::vector<float> want_k;
  std::vector<uint32_t> want_v;
  reference_sort(keys, values, &want_k, &want_v);

  DeviceVec<float> dk(keys), dko(n);
  DeviceVec<uint32_t> dv(values), dvo(n);
  cuda::radix_sort_pairs(static_cast<int64_t>(n), dk.get(), dv.get(), dko.get(), dvo.get());
  const auto ko = dko.host();
  const auto vo = dvo.host();
  size_t bad = 0;
  for (size_t i = 0; i < n && bad < 5; ++i) {
    if (vo[i] != want_v[i] || bits(ko[i]) != bits(want_k[i])) {
      ADD_FAILURE() << "[" << i << "] got key " << ko[i] << " value " << vo[i] << ", expected key " << want_k[i]
                    << " value " << want_v[i];
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
  auto keys = mixed_keys(3000, 9);
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
