// ShardedSampler: the data-parallel ranks' slices of one epoch's global order (issue 16, deliverable 4).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <vector>

#include "data/sampler.h"

using namespace islkd;

namespace {

// Every rank's list, cut back into its per-step batches (the loader's batching of that list by per_rank_batch).
std::vector<std::vector<std::vector<int64_t>>> rank_batches(int64_t n, int world, int64_t b, uint64_t seed,
                                                           int64_t epoch) {
  std::vector<std::vector<std::vector<int64_t>>> out(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    data::ShardedSampler s(std::make_shared<data::ShuffledSampler>(n, seed), r, world, b);
    const std::vector<int64_t> mine = s.indices(epoch);
    EXPECT_EQ(s.last_global_size(), n);
    for (size_t at = 0; at < mine.size(); at += static_cast<size_t>(b))
      out[static_cast<size_t>(r)].emplace_back(mine.begin() + static_cast<long>(at),
                                               mine.begin() + static_cast<long>(std::min(mine.size(), at + b)));
  }
  return out;
}

}  // namespace

TEST(ShardedSampler, RanksTakeTheOneRankBatchesInRankOrder) {
  for (const auto& [n, world, b] : std::vector<std::tuple<int64_t, int, int64_t>>{
           {1000, 2, 64}, {1000, 3, 7}, {129, 2, 64}, {200, 4, 8}, {10, 4, 2}, {5, 8, 1}}) {
    const std::vector<int64_t> global = data::ShuffledSampler(n, 3).indices(1);
    const auto per_rank = rank_batches(n, world, b, 3, 1);
    const int64_t steps = data::global_batches(n, b, world);
    std::vector<int64_t> seen;
    for (int64_t k = 0; k < steps; ++k) {
      std::vector<int64_t> batch;  // the ranks' k-th batches, rank 0 first
      for (int r = 0; r < world; ++r) {
        const auto& mine = per_rank[static_cast<size_t>(r)];
        const data::BatchShard sh = data::batch_shard(n, b, world, r, k);
        if (sh.count == 0) continue;  // an empty slice of a short last batch: the rank has no batch k
        ASSERT_LT(static_cast<size_t>(k), mine.size()) << "n " << n << " rank " << r;
        EXPECT_EQ(static_cast<int64_t>(mine[static_cast<size_t>(k)].size()), sh.count);
        batch.insert(batch.end(), mine[static_cast<size_t>(k)].begin(), mine[static_cast<size_t>(k)].end());
      }
      const int64_t lo = k * b * world, hi = std::min(n, lo + b * world);
      EXPECT_EQ(batch, std::vector<int64_t>(global.begin() + lo, global.begin() + hi)) << "n " << n << " step " << k;
      seen.insert(seen.end(), batch.begin(), batch.end());
    }
    EXPECT_EQ(seen, global) << "every instance once per epoch, n " << n << " world " << world;
  }
}

TEST(ShardedSampler, AShortLastBatchIsSplitAsEvenlyAsIntegersAllow) {
  // 10 instances, 4 ranks x 2: two full batches of 8, then 2 left for 4 ranks: sizes 0, 1, 0, 1.
  std::vector<int64_t> sizes;
  for (int r = 0; r < 4; ++r) sizes.push_back(data::batch_shard(10, 2, 4, r, 1).count);
  EXPECT_EQ(sizes, (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_EQ(data::batch_shard(10, 2, 4, 3, 1).global_count, 2);
  // 29 = 24 + 5 over 3 ranks: 1, 2, 2.
  sizes.clear();
  for (int r = 0; r < 3; ++r) sizes.push_back(data::batch_shard(29, 8, 3, r, 1).count);
  EXPECT_EQ(sizes, (std::vector<int64_t>{1, 2, 2}));
}

TEST(ShardedSampler, OneRankIsTheInnerOrder) {
  data::ShardedSampler s(std::make_shared<data::ShuffledSampler>(77, 9), 0, 1, 10);
  EXPECT_EQ(s.indices(4), data::ShuffledSampler(77, 9).indices(4));
}
