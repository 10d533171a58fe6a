// Data-parallel gradient reduction: the trained parameters' gradients packed into flat float buckets, each
// all-reduced (mean over the ranks) and unpacked, before the SGD update, so the update is the same on every rank.
// Two transports: MPI through host memory (CPU ranks, and GPU ranks without NCCL), and NCCL on device buffers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "engine/train/dist.h"
#include "engine/train/nccl.h"

namespace islkd::train {

// DDP's default bucket cap (torch.nn.parallel.DistributedDataParallel bucket_cap_mb = 25): few enough collectives
// that their latency does not count, small enough that the overlap with the backward has buckets to start early.
inline constexpr double kDefaultBucketMiB = 25.0;
// The first bucket (the last layers' gradients, final first in the backward) closes at 1 MiB when the cap is larger,
// as DDP's (torch.distributed's _DEFAULT_FIRST_BUCKET_BYTES): its all-reduce starts early in the backward instead of
// waiting for 25 MiB of gradients, which a CIFAR student does not even have.
inline constexpr int64_t kFirstBucketBytes = 1 << 20;

// How gradients cross the ranks (--grad-allreduce). Auto: NCCL for CUDA parameters when the world has more than one
// rank and every rank loads libnccl, else MPI through host memory (one warning line when NCCL was wanted but cannot
// load). Mpi: always MPI through host memory. Nccl: NCCL, also in a world of one rank (the GPU check's world-size-1
// run), and an error when it cannot load.
enum class GradAllreduce { Auto, Mpi, Nccl };
GradAllreduce parse_grad_allreduce(const std::string& name);  // "auto" | "mpi" | "nccl"; else a one-line error

class GradientBuckets {
 public:
  // The buckets are laid out once, over `params` in reverse order (the backward produces the last layers' gradients
  // first, so that order is the one the overlap wants), closing a bucket once it holds >= bucket_bytes (the first
  // one at min(bucket_bytes, kFirstBucketBytes)); a parameter larger than the cap is a bucket alone.
  // With `nccl`, the parameters are CUDA tensors and the buckets are flat device buffers: packed on the compute stream
  // (this rank's weight applied), summed by ncclAllReduce (one group, all buckets) on the comm stream after an event
  // of the compute stream, and unpacked (x 1/size) on the compute stream after an event of the comm stream, so the
  // host never waits; the arithmetic is the MPI path's (weight x gradient, the sum, x 1/size), the same bits when
  // the sum's order is. `comm` still carries the small host exchange of which parameters have gradients.
  GradientBuckets(std::vector<std::pair<std::string, Tensor>> params, int64_t bucket_bytes, dist::Communicator& comm,
                  std::shared_ptr<dist::Nccl> nccl = nullptr);

  // Replaces every parameter's gradient by its mean over the ranks. `weight` scales this rank's gradient first: 1
  // for equal shares, n_rank * size / n_batch in an epoch's last, uneven batch (so the result is the gradient of the
  // whole global batch's mean loss), 0 for a rank with no instance in it. A parameter without a gradient on this rank
  // counts as zeros; it gets the mean when some rank had a gradient for it, and stays without one when none had (so
  // SGD skips it everywhere, as it would in one process).
  void reduce(float weight = 1.0f);

  // reduce() overlapped with the backward (DDP's way): begin(weight) before it, ready(leaf) from the backward's
  // on_leaf_ready (Tensor::backward), finish() after it. A bucket is packed and its all-reduce started as soon as its
  // gradients and every earlier bucket's are final, so every rank starts the same collectives in the same order
  // whatever its timing; finish() starts the rest, exchanges which parameters had gradients, waits and unpacks. The
  // arithmetic is reduce()'s: begin(w) + finish() with no ready() in between is reduce(w).
  void begin(float weight);
  void ready(const Tensor& leaf);
  void finish();

  const std::vector<std::vector<size_t>>& buckets() const { return buckets_; }  // parameter positions per bucket
  int64_t bucket_floats(size_t b) const;
  // Spent in reduce() / begin() / ready() / finish() so far: packing, starting and waiting for the collectives,
  // unpacking (with the overlap: the communication the backward did not hide).
  double seconds() const { return seconds_; }
  int64_t calls() const { return calls_; }
  const dist::Nccl* nccl() const { return nccl_.get(); }  // null: MPI through host memory

 private:
  void start_bucket(size_t b);  // packs bucket b (weight x gradient, or zeros) and starts its sum over the ranks
  void unpack();                // x 1/size into fresh gradient tensors, for the parameters some rank had one for

  std::vector<std::pair<std::string, Tensor>> params_;
  dist::Communicator& comm_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<int64_t> offset_;        // MPI: where each bucket starts in flat_ (all buckets are in flight at once)
  std::vector<size_t> bucket_of_;      // parameter position -> its bucket
  std::vector<float> flat_, present_;
  // The step in progress (begin .. finish).
  bool active_ = false, pass_through_ = false;
  float weight_ = 1.0f;
  size_t started_ = 0;                             // buckets started, in order
  std::vector<int64_t> unready_;                   // per bucket: its parameters whose gradient is not final yet
  std::vector<char> ready_;                        // per parameter
  std::unordered_map<const void*, size_t> index_;  // a parameter's TensorImpl -> its position
  std::shared_ptr<dist::Nccl> nccl_;
  std::vector<Tensor> device_flat_;  // NCCL: one device buffer per bucket, made at the first reduce
  double seconds_ = 0.0;
  int64_t calls_ = 0;
};

}  // namespace islkd::train
