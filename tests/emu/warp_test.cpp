// The emulator's warp intrinsics: lane exchange (shuffles with widths), votes, __syncwarp, partial warps, and the
// warp-level deadlock report. The kernels are in warp_kernels.cu.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "kernels/emu/emu_api.h"
#include "tests/emu/emu_kernels.h"

namespace {

TEST(EmuWarp, ShuffleDownReductionPerWarp) {
  for (int n : {1, 31, 33, 1000}) {
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 5 + 1);
    const int warps = (n + 127) / 128 * 4;
    std::vector<float> sums(warps, -1.0f);
    emu_test::warp_reduce_down(x.data(), sums.data(), n);
    for (int w = 0; w < warps; ++w) {
      float ref = 0;
      for (int i = w * 32; i < std::min(n, w * 32 + 32); ++i) ref += x[i];
      if (w * 32 < n) EXPECT_EQ(sums[w], ref) << "n=" << n << " warp=" << w;
    }
  }
}

TEST(EmuWarp, ButterflyReductionGivesEveryLaneTheWarpSum) {
  for (int n : {1, 31, 33, 1000}) {
    std::vector<int> x(n), out(n, -1);
    std::iota(x.begin(), x.end(), 1);
    emu_test::warp_reduce_xor(x.data(), out.data(), n);
    for (int i = 0; i < n; ++i) {
      int ref = 0;
      for (int j = i / 32 * 32; j < std::min(n, i / 32 * 32 + 32); ++j) ref += x[j];
      ASSERT_EQ(out[i], ref) << "n=" << n << " i=" << i;
    }
  }
}

TEST(EmuWarp, ShufflesFollowCudaSemanticsForEveryWidth) {
  std::vector<int> x(32);
  for (int i = 0; i < 32; ++i) x[i] = 100 + i;
  for (int width : {1, 2, 4, 8, 16, 32}) {
    for (int delta : {0, 1, 3, 5, 16}) {
      std::vector<int> idx(32), up(32), down(32), xr(32);
      emu_test::shuffle_patterns(x.data(), idx.data(), up.data(), down.data(), xr.data(), width, delta);
      for (int lane = 0; lane < 32; ++lane) {
        const int seg = lane / width * width, sub = lane % width;
        EXPECT_EQ(idx[lane], x[seg + delta % width]) << "width " << width << " delta " << delta << " lane " << lane;
        EXPECT_EQ(up[lane], sub >= delta ? x[lane - delta] : x[lane]) << width << " " << delta << " " << lane;
        EXPECT_EQ(down[lane], sub + delta < width ? x[lane + delta] : x[lane]) << width << " " << delta << " " << lane;
        const int j = lane ^ delta;
        EXPECT_EQ(xr[lane], j < seg + width ? x[j] : x[lane]) << width << " " << delta << " " << lane;
      }
    }
  }
}

TEST(EmuWarp, BallotAnyAllPerWarpIncludingAPartialWarp) {
  const int n = 40;  // warp 1 has 8 lanes
  std::vector<int> pred(n, 0);
  pred[3] = pred[31] = 1;
  for (int i = 32; i < n; ++i) pred[i] = 1;
  std::vector<unsigned> ballot(2);
  std::vector<int> any(2), all(2);
  emu_test::ballot_any_all(pred.data(), ballot.data(), any.data(), all.data(), n);
  EXPECT_EQ(ballot[0], (1u << 3) | (1u << 31));
  EXPECT_EQ(any[0], 1);
  EXPECT_EQ(all[0], 0);
  EXPECT_EQ(ballot[1], 0xffu);
  EXPECT_EQ(any[1], 1);
  EXPECT_EQ(all[1], 1);  // the lanes that do not exist do not vote
}

TEST(EmuWarp, SyncwarpMakesNeighbourWritesVisible) {
  std::vector<int> x(32), y(32, -1);
  std::iota(x.begin(), x.end(), 0);
  emu_test::syncwarp_neighbour(x.data(), y.data(), 32);
  for (int lane = 0; lane < 32; ++lane) EXPECT_EQ(y[lane], ((lane + 1) % 32) * 10) << lane;
}

TEST(EmuWarp, MatchAnyAndReductions) {
  std::vector<int> x(32);
  for (int i = 0; i < 32; ++i) x[i] = i % 3 == 0 ? 7 : -i;
  std::vector<unsigned> match(32);
  std::vector<int> add(32), mx(32);
  emu_test::match_and_reduce(x.data(), match.data(), add.data(), mx.data(), 32);
  unsigned sevens = 0;
  int sum = 0;
  for (int i = 0; i < 32; ++i) {
    if (x[i] == 7) sevens |= 1u << i;
    sum += x[i];
  }
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(match[i], x[i] == 7 ? sevens : 1u << i) << i;
    EXPECT_EQ(add[i], sum);
    EXPECT_EQ(mx[i], 7);
  }
}

TEST(EmuWarp, ShufflesCarry64BitValues) {
  std::vector<double> x(32), yd(32);
  std::vector<long long> yl(32);
  for (int i = 0; i < 32; ++i) x[i] = 1.0 + i / 3.0;
  emu_test::shuffle_double_and_ll(x.data(), yd.data(), yl.data());
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(yd[i], x[31 - i]);
    EXPECT_EQ(yl[i], static_cast<long long>(x[i ^ 1] * 1e12));
  }
}

TEST(EmuWarp, DisjointMasksInOneWarpShuffleIndependently) {
  std::vector<int> x(32), out(32);
  std::iota(x.begin(), x.end(), 0);
  emu_test::half_warp_shuffles(x.data(), out.data());
  for (int lane = 0; lane < 16; ++lane) EXPECT_EQ(out[lane], 15 - lane);
  for (int lane = 16; lane < 32; ++lane) EXPECT_EQ(out[lane], 2 * (47 - lane));
}

TEST(EmuWarp, LanesThatReturnedDoNotTakePartInAFullMaskBallot) {
  for (int keep : {1, 5, 31}) {
    unsigned out = 0;
    emu_test::ballot_after_early_exit(&out, keep);
    EXPECT_EQ(out, (1u << keep) - 1) << "keep=" << keep;
  }
}

TEST(EmuWarp, ShuffleWaitingForALaneAtSyncthreadsIsReported) {
  try {
    emu_test::warp_waits_for_block_barrier();
    ADD_FAILURE() << "no exception";
  } catch (const islkd_emu::BarrierError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("warp_vs_block_barrier_kernel"), std::string::npos) << msg;
    EXPECT_NE(msg.find("barrier"), std::string::npos) << msg;
    EXPECT_NE(msg.find("__shfl_down_sync"), std::string::npos) << msg;
  }
}

}  // namespace
