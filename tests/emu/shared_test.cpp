// The emulator's shared memory: dynamic and static together, per-block copies, the 48 KiB limit, overruns that
// AddressSanitizer reports (Sanitize build only), and the cost of a launch with a barrier.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/emu/emu_api.h"
#include "tests/emu/emu_kernels.h"

namespace {

TEST(EmuShared, DynamicAndStaticSharedTogether) {
  for (auto [n, block] : {std::pair{1, 1}, {31, 32}, {33, 32}, {1000, 96}}) {
    std::vector<float> x(n), y(n, -1.0f);
    for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 9);
    emu_test::dynamic_and_static_shared(x.data(), y.data(), n, block);
    for (int i = 0; i < n; ++i) {
      float total = 0;
      for (int j = i / block * block; j < std::min(n, i / block * block + block); ++j) total += x[j];
      ASSERT_EQ(y[i], x[i] + total * 0.5f) << "n=" << n << " i=" << i;
    }
  }
}

TEST(EmuShared, EveryBlockHasItsOwnStaticShared) {
  const int grid = 64, block = 96;
  std::vector<int> out(grid, -1);
  emu_test::shared_is_per_block(out.data(), grid, block);
  for (int b = 0; b < grid; ++b) EXPECT_EQ(out[b], block) << b;
}

// Shared memory starts as 0xff bytes (kernels/emu/runtime.cpp kUninitialisedShared) in every block of every launch,
// never as zeros or a previous launch's values, so a kernel that reads before it writes gives NaN / -1 in tests.
TEST(EmuShared, StaticAndDynamicSharedReadBeforeAnyWriteArePoison) {
  const int grid = 3, n = grid * 32;
  std::vector<float> s(n, 0.0f), d(n, 0.0f);
  std::vector<int> si(n, 0);
  emu_test::read_uninitialised_shared(s.data(), si.data(), d.data(), grid);
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(std::isnan(s[i])) << "static float " << i << " = " << s[i];
    EXPECT_EQ(si[i], -1) << "static int " << i;
    EXPECT_TRUE(std::isnan(d[i])) << "dynamic float " << i << " = " << d[i];
    uint32_t bits;
    std::memcpy(&bits, &d[i], 4);
    EXPECT_EQ(bits, 0xffffffffu) << "dynamic float " << i;
  }
}

TEST(EmuShared, StaticPlusDynamicAbove48KiBIsALaunchError) {
  EXPECT_THROW(emu_test::static_shared_too_large(), islkd_emu::LaunchConfigError);
}

#if defined(ISLKD_SANITIZE)
TEST(EmuSharedDeathTest, DynamicSharedOverrunIsCaughtByAddressSanitizer) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        islkd_emu::set_threads(1);
        emu_test::dynamic_shared_overrun(32);
      },
      "heap-buffer-overflow");
}
TEST(EmuSharedDeathTest, StaticSharedOverrunIsCaughtByAddressSanitizer) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        islkd_emu::set_threads(1);
        emu_test::static_shared_overrun(64);
      },
      "heap-buffer-overflow");
}
#else
TEST(EmuSharedDeathTest, DynamicSharedOverrunIsCaughtByAddressSanitizer) {
  GTEST_SKIP() << "only meaningful in the Sanitize build (ASan)";
}
#endif

TEST(Emulator, ThousandBlocksOf256ThreadsWithABarrierTakeWellUnderASecond) {
  const int grid = 1000, block = 256;
  std::vector<float> out(grid, 0.0f);
  emu_test::barrier_benchmark(out.data(), grid, block);  // warm-up: stacks mapped, pool started
  const auto before = islkd_emu::stats();
  const auto t0 = std::chrono::steady_clock::now();
  emu_test::barrier_benchmark(out.data(), grid, block);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto after = islkd_emu::stats();
  std::printf("[ emu perf ] %d blocks x %d threads, 1 barrier: %.1f ms (%d OS threads, %llu fiber switches, "
              "%.1f ns per switch incl. kernel)\n",
              grid, block, s * 1e3, islkd_emu::threads(),
              static_cast<unsigned long long>(after.switches - before.switches),
              s * 1e9 / static_cast<double>(after.switches - before.switches));
  for (int b = 0; b < grid; ++b) ASSERT_EQ(out[b], 255.0f);
#if defined(NDEBUG) && !defined(ISLKD_SANITIZE)
  EXPECT_LT(s, 1.0);
#endif
}

TEST(Emulator, ElementwiseKernelWithoutBarriersIsCheap) {
  // Threads that never block run one after another on one fiber stack: no switch per thread.
  const int n = 1000 * 256;
  std::vector<float> x(n, 1.5f), y(n, 0.0f);
  emu_test::elementwise_benchmark(x.data(), y.data(), n);
  const auto before = islkd_emu::stats();
  const auto t0 = std::chrono::steady_clock::now();
  emu_test::elementwise_benchmark(x.data(), y.data(), n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto after = islkd_emu::stats();
  std::printf("[ emu perf ] 1000 blocks x 256 threads, no barrier: %.1f ms (%.1f ns per thread, %llu fiber "
              "switches)\n",
              s * 1e3, s * 1e9 / n, static_cast<unsigned long long>(after.switches - before.switches));
  for (int i = 0; i < n; ++i) ASSERT_EQ(y[i], 3.0f);
  EXPECT_LE(after.switches - before.switches, 1000u);  // one fiber per block
}

}  // namespace
