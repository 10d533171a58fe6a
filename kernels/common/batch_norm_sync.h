// Synchronised batch norm (--sync-bn): what the batch-norm kernels need from the other replicas of a data-parallel
// run, and the two combinations they do with it, written once for the CPU and CUDA kernels.
//
// The training kernels hand their per-channel local values to a BatchNormSync between their reduction and their
// elementwise pass: the forward its count, mean and M2 (the sum of squared deviations from its own mean), the
// backward its sum(dy) and sum(dy * (x - mean)) and its count. Every replica's values are all-gathered (a few KiB of
// doubles) and combined on every replica in replica order, so each one gets the same bits (the running statistics
// stay equal without a broadcast) and a run is deterministic. Moments are merged with Chan et al.'s parallel formula
// (no E[x^2] - E[x]^2 cancellation in float32 activations with |mean| >> std); sums are added in double. With one
// replica both are exact identities: the result is bit-equal to unsynchronised batch norm.
#pragma once
#include <cstdint>
#include <vector>

namespace islkd {

class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  virtual int replicas() const = 0;
  // Every replica's n doubles from `mine`, concatenated in replica order into `all` (replicas() * n). Collective:
  // every replica calls it for the same layers in the same order.
  virtual void allgather(const double* mine, int64_t n, double* all) = 0;
};

// In place over C channels: this replica's count (the same for every channel), mean and M2 -> those of the union of
// every replica's values (Chan's pairwise merge, replicas in order).
inline void sync_moments(BatchNormSync& sync, int64_t C, double& count, double* mean, double* m2) {
  const int64_t per = 1 + 2 * C, R = sync.replicas();
  std::vector<double> mine(static_cast<size_t>(per)), all(static_cast<size_t>(per * R));
  mine[0] = count;
  for (int64_t c = 0; c < C; ++c) {
    mine[static_cast<size_t>(1 + c)] = mean[c];
    mine[static_cast<size_t>(1 + C + c)] = m2[c];
  }
  sync.allgather(mine.data(), per, all.data());
  double n = 0.0;
  for (int64_t c = 0; c < C; ++c) mean[c] = 0.0, m2[c] = 0.0;
  for (int64_t r = 0; r < R; ++r) {
    const double* p = all.data() + r * per;
    const double nb = p[0], total = n + nb;
    if (nb == 0.0) continue;
    for (int64_t c = 0; c < C; ++c) {
      const double delta = p[1 + c] - mean[c];
      mean[c] += delta * (nb / total);
      m2[c] += p[1 + C + c] + delta * delta * (n * nb / total);
    }
    n = total;
  }
  count = n;
}

// In place: data[0..n) -> the element-wise sum over the replicas, added in replica order from +0.0.
inline void sync_sums(BatchNormSync& sync, int64_t n, double* data) {
  const int64_t R = sync.replicas();
  std::vector<double> all(static_cast<size_t>(n * R));
  sync.allgather(data, n, all.data());
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t r = 0; r < R; ++r) s += all[static_cast<size_t>(r * n + i)];
    data[i] = s;
  }
}

}  // namespace islkd
