// Radix sort of float scores carrying instance indices: against std::stable_sort with the specified order
// (-0 == +0, NaN after +inf, ties keep input order) for sizes up to 10^6 with every special value, the
// canonical output keys, stability, thread-count independence, and the op's boundary checks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/radix_sort_reference.h"

using namespace islkd;
using namespace islkd::test;

namespace {

std::vector<uint32_t> iota_values(size_t n) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

::testing::AssertionResult same_keys_bitwise(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (bits(a[i]) != bits(b[i]))
      return ::testing::AssertionFailure() << "key [" << i << "] bits " << std::hex << bits(a[i]) << " expected "
                                           << bits(b[i]) << std::dec << " (" << a[i] << " vs " << b[i] << ")";
  return ::testing::AssertionSuccess();
}

void expect_sorted_like_reference(const std::vector<float>& keys, const std::vector<uint32_t>& values,
                                  const std::string& what) {
  std::vector<float> rk, k(keys.size());
  std::vector<uint32_t> rv, v(keys.size());
  reference_sort(keys, values, &rk, &rv);
  cpu::radix_sort_pairs(static_cast<int64_t>(keys.size()), keys.data(), values.data(), k.data(), v.data());
  EXPECT_TRUE(same_keys_bitwise(k, rk)) << what;
  EXPECT_TRUE(v == rv) << what << ": values differ from std::stable_sort's";
}

}  // namespace

TEST(RadixSort, MatchesStableSortForAllSizes) {
  for (size_t n : {size_t{1}, size_t{2}, size_t{31}, size_t{1000}, size_t{65537}, size_t{1000000}})
    expect_sorted_like_reference(mixed_keys(n, static_cast<uint32_t>(n)), iota_values(n), "n=" + std::to_string(n));
}

TEST(RadixSort, NaNKeysSortLast) {
  std::vector<float> keys = {from_bits(0xFFFFFFFFu), 3.0f, kInf, from_bits(0x7F800001u), -kInf,
                             from_bits(0xFFC00000u), 0.0f, from_bits(0x7FC00123u), -2.0f};
  std::vector<float> k(keys.size());
  std::vector<uint32_t> v(keys.size());
  cpu::radix_sort_pairs(static_cast<int64_t>(keys.size()), keys.data(), iota_values(keys.size()).data(), k.data(),
                        v.data());
  EXPECT_EQ(v, (std::vector<uint32_t>{4, 8, 6, 1, 2, 0, 3, 5, 7}));  // NaNs last, in input order
  EXPECT_EQ(k[4], kInf);
  for (size_t i = 5; i < k.size(); ++i) EXPECT_EQ(bits(k[i]), 0x7FC00000u) << "NaN at " << i << " not canonical";
}

TEST(RadixSort, IsStableForTies) {
  // 50000 keys with only 3 distinct values: within a value, indices must come out in input order.
  const size_t n = 50000;
  std::mt19937 rng(9);
  std::vector<float> keys(n);
  for (auto& k : keys) k = static_cast<float>(rng() % 3) - 1.0f;
  std::vector<float> k(n);
  std::vector<uint32_t> v(n);
  cpu::radix_sort_pairs(static_cast<int64_t>(n), keys.data(), iota_values(n).data(), k.data(), v.data());
  for (size_t i = 1; i < n; ++i) {
    ASSERT_LE(k[i - 1], k[i]) << i;
    if (k[i - 1] == k[i]) {
      ASSERT_LT(v[i - 1], v[i]) << "tie at " << i << " lost input order";
    }
  }
}

TEST(RadixSort, NegativeZeroEqualsPositiveZeroAndComesOutPositive) {
  std::vector<float> keys = {0.0f, -0.0f, -0.0f, 0.0f, -1e-45f, 1e-45f};
  std::vector<float> k(keys.size());
  std::vector<uint32_t> v(keys.size());
  cpu::radix_sort_pairs(static_cast<int64_t>(keys.size()), keys.data(), iota_values(keys.size()).data(), k.data(),
                        v.data());
  EXPECT_EQ(v, (std::vector<uint32_t>{4, 0, 1, 2, 3, 5}));
  for (size_t i = 1; i <= 4; ++i) EXPECT_EQ(bits(k[i]), 0u) << "zero at " << i << " kept its sign";
}

TEST(RadixSort, InfinitiesSortAtTheEnds) {
  std::vector<float> keys = {kInf, 1.0f, -kInf, std::numeric_limits<float>::max(),
                             -std::numeric_limits<float>::max()};
  std::vector<float> k(keys.size());
  std::vector<uint32_t> v(keys.size());
  cpu::radix_sort_pairs(static_cast<int64_t>(keys.size()), keys.data(), iota_values(keys.size()).data(), k.data(),
                        v.data());
  EXPECT_EQ(v, (std::vector<uint32_t>{2, 4, 1, 3, 0}));
}

TEST(RadixSort, KeysSharingDigitsSkipPassesCorrectly) {
  // Small integers as floats share their low mantissa bytes (skipped passes); all-equal keys skip every pass.
  std::mt19937 rng(4);
  std::vector<float> ints(70000), same(70000, 2.5f);
  for (auto& k : ints) k = static_cast<float>(rng() % 200);
  expect_sorted_like_reference(ints, iota_values(ints.size()), "small integers");
  expect_sorted_like_reference(same, iota_values(same.size()), "all equal");
  std::vector<uint32_t> reversed = iota_values(same.size());
  std::reverse(reversed.begin(), reversed.end());
  expect_sorted_like_reference(same, reversed, "all equal, arbitrary values");
}

TEST(RadixSort, ResultDoesNotDependOnThreadCount) {
  std::vector<float> keys = mixed_keys(300000, 77);  // above the single-thread cut-off (2^18)
  const int saved = cpu::num_threads();
  for (int threads : {1, 2, 3}) {
    cpu::set_num_threads(threads);
    expect_sorted_like_reference(keys, iota_values(keys.size()), "threads=" + std::to_string(threads));
  }
  cpu::set_num_threads(saved);
}

TEST(RadixSort, SortsAMillionKeysWellUnderASecond) {
  // Timing is printed for the record (Release: a few ms); the bound is loose so Sanitize/Debug builds pass.
  std::vector<float> keys = test::random_vector(1000000, 5, -10.0f, 10.0f);
  std::vector<uint32_t> values = iota_values(keys.size()), v(keys.size());
  std::vector<float> k(keys.size());
  double best = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    cpu::radix_sort_pairs(static_cast<int64_t>(keys.size()), keys.data(), values.data(), k.data(), v.data());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  ASSERT_TRUE(std::is_sorted(k.begin(), k.end()));
  std::printf("radix_sort_pairs: 10^6 keys in %.2f ms (%d threads)\n", best * 1e3, cpu::num_threads());
  RecordProperty("ms_per_million", std::to_string(best * 1e3));
#ifndef ISLKD_SANITIZE
  EXPECT_LT(best, 1.0);
#endif
}

TEST(RadixSortOp, SortsTensorKeysAndCarriesValues) {
  std::vector<float> keys = mixed_keys(1000, 3);
  std::vector<uint32_t> values(keys.size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<uint32_t>(7 * i + 1);
  std::vector<float> rk;
  std::vector<uint32_t> rv;
  reference_sort(keys, values, &rk, &rv);
  auto [k, v] = ops::radix_sort_pairs(Tensor::from_vector(keys, {1000}), values);
  EXPECT_TRUE(same_keys_bitwise(k.to_vector(), rk));
  EXPECT_EQ(v, rv);
}

TEST(RadixSortOp, ValueCountMismatchIsAnError) {
  try {
    ops::radix_sort_pairs(Tensor::zeros({5}), std::vector<uint32_t>(4));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("radix_sort_pairs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::radix_sort_pairs(Tensor::zeros({2, 3}), std::vector<uint32_t>(6)), Error);
}
