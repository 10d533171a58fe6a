// The emulator's launch semantics and __syncthreads(): indices, interleaving at barriers, deadlock reports,
// exceptions and launch errors. The kernels are in barrier_kernels.cu.
#include <gtest/gtest.h>

#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/emu/emu_api.h"
#include "tests/emu/emu_kernels.h"

namespace {

template <typename F>
std::string error_message(F f) {
  try {
    f();
  } catch (const islkd_emu::BarrierError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

TEST(EmuBarrier, BlockReductionThroughSharedMemory) {
  for (int n : {1, 31, 33, 1000}) {
    for (int block : {1, 32, 33, 256, 1000}) {
      std::vector<float> x(n);
      for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 7 + 1);
      const int grid = (n + block - 1) / block;
      std::vector<float> sums(grid, -1.0f);
      emu_test::block_reduce_sum(x.data(), sums.data(), n, block);
      for (int b = 0; b < grid; ++b) {
        float ref = 0;
        for (int i = b * block; i < std::min(n, (b + 1) * block); ++i) ref += x[i];
        EXPECT_EQ(sums[b], ref) << "n=" << n << " block=" << block << " b=" << b;
      }
    }
  }
}

TEST(EmuBarrier, ThreadZeroReadsWhatTheLastThreadWroteBeforeTheBarrier) {
  for (int n : {2, 32, 33, 1024}) {
    std::vector<int> x(n), y(n, -1);
    std::iota(x.begin(), x.end(), 100);
    emu_test::reverse_in_block(x.data(), y.data(), n);
    for (int i = 0; i < n; ++i) ASSERT_EQ(y[i], x[n - 1 - i]) << "n=" << n << " i=" << i;
  }
}

TEST(EmuBarrier, TileTransposeAtAwkwardSizes) {
  for (auto [rows, cols] : {std::pair{1, 1}, {31, 33}, {33, 31}, {64, 100}}) {
    std::vector<float> in(rows * cols), out(rows * cols, -1.0f);
    std::iota(in.begin(), in.end(), 0.0f);
    emu_test::transpose(in.data(), out.data(), rows, cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) ASSERT_EQ(out[c * rows + r], in[r * cols + c]) << rows << "x" << cols;
  }
}

TEST(EmuBarrier, RepeatedBarriersInALoop) {
  const int n = 37, rounds = 5;
  std::vector<int> x(n);
  std::iota(x.begin(), x.end(), 1);
  std::vector<long long> ref(x.begin(), x.end()), out(n);
  for (int r = 0; r < rounds; ++r) {
    std::vector<long long> next(n);
    for (int i = 0; i < n; ++i) next[i] = ref[i] + ref[(i + 1) % n];
    ref = next;
  }
  emu_test::barrier_in_loop(x.data(), out.data(), n, rounds);
  EXPECT_EQ(out, ref);
}

TEST(EmuBarrier, SyncthreadsCountAndOr) {
  const int n = 70;
  std::vector<int> pred(n, 0);
  for (int i = 0; i < n; i += 3) pred[i] = 5;
  int count = -1, all = -1, any = -1;
  emu_test::syncthreads_predicates(pred.data(), &count, &all, &any, n);
  EXPECT_EQ(count, 24);
  EXPECT_EQ(all, 0);
  EXPECT_EQ(any, 1);
  std::fill(pred.begin(), pred.end(), 1);
  emu_test::syncthreads_predicates(pred.data(), &count, &all, &any, n);
  EXPECT_EQ(count, n);
  EXPECT_EQ(all, 1);
}

TEST(EmuBarrier, EarlyReturnBeforeABarrierIsReportedWithTheKernelName) {
  std::vector<int> out(64);
  const std::string msg = error_message([&] { emu_test::early_return_before_barrier(out.data(), 64); });
  EXPECT_NE(msg.find("early_return_kernel"), std::string::npos) << msg;
  EXPECT_NE(msg.find("barrier"), std::string::npos) << msg;
  EXPECT_NE(msg.find("returned"), std::string::npos) << msg;
}

TEST(EmuBarrier, ThreadsAtDifferentBarriersAreADeadlock) {
  std::vector<int> out(32);
  const std::string msg = error_message([&] { emu_test::two_different_barriers(out.data(), 32); });
  EXPECT_NE(msg.find("two_barriers_kernel"), std::string::npos) << msg;
  EXPECT_NE(msg.find("different barriers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("barrier_kernels.cu:"), std::string::npos) << msg;
}

TEST(Emulator, ExceptionFromAKernelThreadReachesTheLauncher) {
  for (int thrower : {0, 17, 63}) {
    try {
      emu_test::throw_in_thread(64, thrower);
      ADD_FAILURE() << "no exception";
    } catch (const std::logic_error& e) {
      EXPECT_STREQ(e.what(), "thrown by a kernel thread");
    }
  }
  // The emulator is usable after an aborted launch (abandoned fibers, reused stacks).
  std::vector<int> x(64, 3), y(64);
  emu_test::reverse_in_block(x.data(), y.data(), 64);
  EXPECT_EQ(y, x);
}

TEST(Emulator, ThreadAndBlockIndicesIn3DBlocksAnd2DGrids) {
  const int gx = 3, gy = 2, bx = 5, by = 3, bz = 2, nt = bx * by * bz;
  std::vector<int> out(4 * gx * gy * nt, -1);
  emu_test::write_thread_ids(out.data(), gx, gy, bx, by, bz);
  for (int b = 0; b < gx * gy; ++b)
    for (int z = 0; z < bz; ++z)
      for (int y = 0; y < by; ++y)
        for (int x = 0; x < bx; ++x) {
          const int* o = &out[4 * (b * nt + x + bx * (y + by * z))];
          ASSERT_EQ(o[0], x);
          ASSERT_EQ(o[1], y);
          ASSERT_EQ(o[2], z);
          ASSERT_EQ(o[3], (b % gx) * 1000 + b / gx);
        }
}

TEST(Emulator, GridNotAMultipleOfTheBlockCoversEveryElementOnce) {
  for (auto [n, grid, block] : {std::tuple{1, 1, 1}, {31, 1, 32}, {33, 2, 32}, {1000, 3, 33}, {1000, 64, 128}}) {
    std::vector<int> out(n, 0);
    emu_test::grid_stride_fill(out.data(), n, grid, block);
    for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], i + 1) << "n=" << n << " grid=" << grid << " block=" << block;
  }
}

TEST(Emulator, SameResultsWithOneOrSeveralOsThreads) {
  const int n = 5000;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = 1.0f / static_cast<float>(i + 1);
  std::vector<float> a(40), b(40);
  const int saved = islkd_emu::threads();
  islkd_emu::set_threads(1);
  emu_test::block_reduce_sum(x.data(), a.data(), n, 128);
  islkd_emu::set_threads(4);
  emu_test::block_reduce_sum(x.data(), b.data(), n, 128);
  islkd_emu::set_threads(saved);
  EXPECT_EQ(a, b);
}

TEST(Emulator, AMissingBarrierGivesWrongResultsInSomeBlock) {
  // Whatever order a block's threads run in, one of two neighbouring blocks runs them the other way round.
  const int grid = 2, block = 64;
  std::vector<int> out(grid * block, 0);
  emu_test::missing_barrier(out.data(), grid, block);
  int wrong = 0;
  for (int b = 0; b < grid; ++b)
    for (int t = 1; t < block; ++t) wrong += out[b * block + t] != t;
  EXPECT_GT(wrong, 0);
}

TEST(Emulator, TemplateKernelLaunchedThroughParentheses) {
  std::vector<double> x(45, 1.5);
  emu_test::multiply_template(x.data(), 45);
  for (double v : x) EXPECT_EQ(v, 4.5);
}

TEST(Emulator, InvalidLaunchConfigurationsThrow) {
  EXPECT_THROW(emu_test::launch_config(1, 1025, 1, 1, 0), islkd_emu::LaunchConfigError);
  EXPECT_THROW(emu_test::launch_config(1, 32, 32, 2, 0), islkd_emu::LaunchConfigError);
  EXPECT_THROW(emu_test::launch_config(1, 1, 1, 65, 0), islkd_emu::LaunchConfigError);
  EXPECT_THROW(emu_test::launch_config(0, 32, 1, 1, 0), islkd_emu::LaunchConfigError);
  EXPECT_THROW(emu_test::launch_config(1, 0, 1, 1, 0), islkd_emu::LaunchConfigError);
  EXPECT_THROW(emu_test::launch_config(1, 32, 1, 1, 48 * 1024 + 1), islkd_emu::LaunchConfigError);
  EXPECT_NO_THROW(emu_test::launch_config(1, 1024, 1, 1, 48 * 1024));
  try {
    emu_test::launch_config(1, 2048, 1, 1, 0);
  } catch (const islkd_emu::LaunchConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("dynamic_touch_kernel"), std::string::npos) << e.what();
  }
}

TEST(Emulator, DynamicSharedAbove48KiBNeedsTheOptIn) {
  EXPECT_NO_THROW(emu_test::opt_in_dynamic_shared(100 * 1024));
  EXPECT_THROW(emu_test::opt_in_dynamic_shared(228 * 1024), islkd_emu::LaunchConfigError);
}

TEST(Emulator, LaunchFromDeviceCodeIsAnError) {
  EXPECT_THROW(emu_test::launch_from_kernel(), islkd_emu::Error);
}

}  // namespace
