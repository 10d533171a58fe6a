// Built-in samplers: the identity order and a (seed, epoch)-determined shuffle.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>

#include "data/transforms.h"
#include "kernels/common/error.h"

namespace islkd::data {

std::vector<int64_t> SequentialSampler::indices(int64_t) {
  std::vector<int64_t> v(static_cast<size_t>(n_));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

std::vector<int64_t> ShuffledSampler::indices(int64_t epoch) {
  std::vector<int64_t> v(static_cast<size_t>(n_));
  std::iota(v.begin(), v.end(), int64_t{0});
  // Fisher-Yates; position i's draw is keyed by (seed, epoch, i) in its own stream, apart from augmentation's.
  for (int64_t i = n_ - 1; i > 0; --i) {
    uint64_t r = random_bits(seed_, epoch, i, 0x5348554646ull /* "SHUFF" */);
    int64_t j = static_cast<int64_t>(r % static_cast<uint64_t>(i + 1));
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(j)]);
  }
  return v;
}

namespace {
// A per-rank batch larger than the epoch is the whole epoch in one step: capped at n first, so that neither
// world x batch nor the rounding up can overflow (train --batch-size near INT64_MAX).
int64_t global_batch_size(int64_t n, int64_t per_rank_batch, int world) {
  return std::min(per_rank_batch, std::max<int64_t>(n, 1)) * world;
}
}  // namespace

int64_t global_batches(int64_t n, int64_t per_rank_batch, int world) {
  const int64_t b = global_batch_size(n, per_rank_batch, world);
  return n / b + (n % b != 0);
}

BatchShard batch_shard(int64_t n, int64_t per_rank_batch, int world, int rank, int64_t batch) {
  ISLKD_CHECK(world >= 1 && rank >= 0 && rank < world && per_rank_batch >= 1, "batch_shard: rank ", rank, " of ",
              world, " with ", per_rank_batch, " instances per rank");
  const int64_t b = global_batch_size(n, per_rank_batch, world), start = batch * b;
  BatchShard s;
  s.global_count = std::max<int64_t>(0, std::min(b, n - start));
  const int64_t lo = s.global_count * rank / world, hi = s.global_count * (rank + 1) / world;
  s.begin = start + lo;
  s.count = hi - lo;
  return s;
}

ShardedSampler::ShardedSampler(std::shared_ptr<Sampler> inner, int rank, int world, int64_t per_rank_batch)
    : inner_(std::move(inner)), rank_(rank), world_(world), per_rank_batch_(per_rank_batch) {
  ISLKD_CHECK(world >= 1 && rank >= 0 && rank < world, "ShardedSampler: rank ", rank, " of a world of ", world);
  ISLKD_CHECK(per_rank_batch >= 1, "ShardedSampler: per-rank batch ", per_rank_batch);
}

std::vector<int64_t> ShardedSampler::indices(int64_t epoch) {
  const std::vector<int64_t> all = inner_->indices(epoch);
  const int64_t n = static_cast<int64_t>(all.size()), k = global_batches(n, per_rank_batch_, world_);
  last_global_size_ = n;
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(n / world_ + 1));
  for (int64_t batch = 0; batch < k; ++batch) {
    const BatchShard s = batch_shard(n, per_rank_batch_, world_, rank_, batch);
    mine.insert(mine.end(), all.begin() + s.begin, all.begin() + s.begin + s.count);
  }
  return mine;
}

}  // namespace islkd::data
