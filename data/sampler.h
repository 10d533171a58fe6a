// Samplers say which instances an epoch visits and in which order; the ISL curriculum implements this
// interface to hand the loader its easy-to-hard orderings.
#pragma once
#include <cstdint>
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

// A fixed list (e.g. a subset, or an order computed elsewhere), the same every epoch.
class ListSampler : public Sampler {
 public:
  explicit ListSampler(std::vector<int64_t> list) : list_(std::move(list)) {}
  std::vector<int64_t> indices(int64_t) override { return list_; }

 private:
  std::vector<int64_t> list_;
};

}  // namespace islkd::data
