// Data-parallel gradient reduction: the trained parameters' gradients packed into flat float buckets, each
// all-reduced (mean over the ranks) and unpacked, before the SGD update, so the update is the same on every rank.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "engine/train/dist.h"

namespace islkd::train {

// DDP's default bucket cap (torch.nn.parallel.DistributedDataParallel bucket_cap_mb = 25): few enough collectives
// that their latency does not count, small enough that a future overlap with the backward has buckets to start.
inline constexpr double kDefaultBucketMiB = 25.0;

class GradientBuckets {
 public:
  // The buckets are laid out once, over `params` in reverse order (the backward produces the last layers' gradients
  // first, so that order is the one an overlap will want), closing a bucket once it holds >= bucket_bytes; a
  // parameter larger than the cap is a bucket alone.
  GradientBuckets(std::vector<std::pair<std::string, Tensor>> params, int64_t bucket_bytes, dist::Communicator& comm);

  // Replaces every parameter's gradient by its mean over the ranks. `weight` scales this rank's gradient first: 1
  // for equal shares, n_rank * size / n_batch in an epoch's last, uneven batch (so the result is the gradient of the
  // whole global batch's mean loss), 0 for a rank with no instance in it. A parameter without a gradient on this rank
  // counts as zeros; it gets the mean when some rank had a gradient for it, and stays without one when none had (so
  // SGD skips it everywhere, as it would in one process).
  void reduce(float weight = 1.0f);

  const std::vector<std::vector<size_t>>& buckets() const { return buckets_; }  // parameter positions per bucket
  int64_t bucket_floats(size_t b) const;
  double seconds() const { return seconds_; }  // spent in reduce() so far (packing, the collectives, unpacking)
  int64_t calls() const { return calls_; }

 private:
  std::vector<std::pair<std::string, Tensor>> params_;
  dist::Communicator& comm_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<float> flat_, present_;
  double seconds_ = 0.0;
  int64_t calls_ = 0;
};

}  // namespace islkd::train
