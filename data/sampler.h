// Samplers say which instances an epoch visits and in which order; the ISL curriculum implements this
// interface to hand the loader its easy-to-hard orderings.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace islkd::data {

class Sampler {
 public:
  virtual ~Sampler() = default;
  // The instance indices of this epoch, in order. Called once per epoch, from the consumer's thread.
  virtual std::vector<int64_t> indices(int64_t epoch) = 0;
};

class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(int64_t n) : n_(n) {}
  std::vector<int64_t> indices(int64_t epoch) override;

 private:
  int64_t n_;
};

// A permutation of 0..n-1 that depends only on (seed, epoch): Fisher-Yates driven by the counter-based hash.
class ShuffledSampler : public Sampler {
 public:
  ShuffledSampler(int64_t n, uint64_t seed) : n_(n), seed_(seed) {}
  std::vector<int64_t> indices(int64_t epoch) override;

 private:
  int64_t n_;
  uint64_t seed_;
};

// Data-parallel sharding of one epoch's global order over `world` ranks with a global batch of world * per_rank_batch:
// global batch k is the instances [k*B, k*B + m_k) of the global order (B = world * per_rank_batch, m_k = B except
// in a last, shorter batch), and rank r takes the contiguous slice [k*B + r*m_k/world, k*B + (r+1)*m_k/world) of it
// (integer division). So every instance is seen once per epoch by exactly one rank, the ranks' slices of a global
// batch are the 1-rank run's batch k in rank order, and a last batch of m < B instances is split as evenly as
// integers allow (sizes floor or ceil of m/world; a rank gets none when m < world).
struct BatchShard {
  int64_t begin = 0, count = 0;  // this rank's slice, as positions in the global order
  int64_t global_count = 0;      // m_k: the global batch's instances
};
BatchShard batch_shard(int64_t n, int64_t per_rank_batch, int world, int rank, int64_t batch);
int64_t global_batches(int64_t n, int64_t per_rank_batch, int world);  // ceil(n / (world * per_rank_batch))

// The rank's part of an inner sampler's epoch (the inner order must be the same on every rank: it is a pure function
// of the seed and the epoch, or of scores every rank shares). Handed to a loader with batch size per_rank_batch, it
// yields batch_shard(...)'s slices as that rank's batches, one per global batch (none for an empty last slice).
class ShardedSampler : public Sampler {
 public:
  ShardedSampler(std::shared_ptr<Sampler> inner, int rank, int world, int64_t per_rank_batch);
  std::vector<int64_t> indices(int64_t epoch) override;
  // The global order's length in the last epoch asked for (a curriculum phase visits a subset).
  int64_t last_global_size() const { return last_global_size_; }

 private:
  std::shared_ptr<Sampler> inner_;
  int rank_, world_;
  int64_t per_rank_batch_;
  int64_t last_global_size_ = 0;
};

// A fixed list (e.g. a subset, or an order computed elsewhere), the same every epoch.
class ListSampler : public Sampler {
 public:
  explicit ListSampler(std::vector<int64_t> list) : list_(std::move(list)) {}
  std::vector<int64_t> indices(int64_t) override { return list_; }

 private:
  std::vector<int64_t> list_;
};

}  // namespace islkd::data
