// The emulator's atomics on global and shared memory under contention from blocks on several OS threads.
// The kernels are in atomic_kernels.cu.
#include <gtest/gtest.h>

#include <vector>

#include "tests/emu/emu_kernels.h"

namespace {

TEST(EmuAtomics, GlobalContentionGivesExactCounts) {
  const int grid = 300, block = 128, n = grid * block;
  int counter = 0, imin = 0;
  unsigned umax = 0;
  unsigned long long big = 0;
  float fsum = 0;
  emu_test::atomics_global(&counter, &umax, &imin, &big, &fsum, grid, block);
  EXPECT_EQ(counter, n);
  EXPECT_EQ(umax, static_cast<unsigned>(n - 1));
  EXPECT_EQ(imin, -(n - 1));
  EXPECT_EQ(big, static_cast<unsigned long long>(n) << 33);
  EXPECT_EQ(fsum, static_cast<float>(n));
}

TEST(EmuAtomics, SharedMemoryHistogram) {
  for (int n : {1, 31, 33, 1000, 10007}) {
    const int bins = 37;
    std::vector<int> keys(n), hist(bins, 0), ref(bins, 0);
    for (int i = 0; i < n; ++i) keys[i] = (i * 7 + i / 3) % bins, ++ref[keys[i]];
    emu_test::atomics_shared(keys.data(), hist.data(), n, bins);
    EXPECT_EQ(hist, ref) << "n=" << n;
  }
}

TEST(EmuAtomics, CompareAndSwapSpinLockAcrossBlocks) {
  int lock = 0, value = 0;
  emu_test::atomic_cas_lock(&lock, &value, 500);
  EXPECT_EQ(value, 500);
  EXPECT_EQ(lock, 0);
}

TEST(EmuAtomics, SubIncDecExchange) {
  const int n = 33;
  int sub = 1000;
  unsigned inc = 0, dec = 0;
  std::vector<int> seen(n + 2, 0);
  emu_test::atomic_exch_sub_inc(&sub, &inc, &dec, seen.data(), n);
  EXPECT_EQ(sub, 1000 - 3 * n);
  EXPECT_EQ(inc, static_cast<unsigned>(n % 10));
  EXPECT_EQ(dec, static_cast<unsigned>((10 - n % 10) % 10));
  // Every value (the initial 0, then thread t writes t+1) is returned by exactly one exchange, except the last.
  int total = 0;
  for (int v = 0; v <= n; ++v) {
    EXPECT_LE(seen[1 + v], 1) << v;
    total += seen[1 + v];
  }
  EXPECT_EQ(total, n);
  EXPECT_EQ(seen[1 + seen[0]], 0);  // the value left in memory was never returned
}

}  // namespace
