// The contrastive negatives of the crd objective (RepDistiller's CIFAR100InstanceSample, mode 'exact'), as a pure
// function of (seed, epoch, step, row) so a resumed run draws the same ones; defined in objective_crd.cpp, where the
// choice is explained. Public for the tests, which feed the same rows to the PyTorch reference.
#pragma once
#include <cstdint>
#include <vector>

namespace islkd::distill {

class CRDNegatives {
 public:
  CRDNegatives() = default;
  // labels: the training set's, by instance index; k negatives per row (nce_k).
  CRDNegatives(const std::vector<int32_t>& labels, int64_t k, uint64_t seed);
  // Row-major B x (k + 1): row b is [indices[b], k instances whose label differs from its label], drawn uniformly
  // without replacement (with replacement when fewer than k exist).
  std::vector<int32_t> rows(int64_t epoch, int64_t step, const std::vector<int64_t>& indices) const;
  int64_t size() const { return static_cast<int64_t>(sorted_.size()); }
  int64_t k() const { return k_; }

 private:
  void row(uint64_t key, int64_t y, std::vector<int32_t>& a, int32_t* out) const;
  int64_t k_ = 0;
  uint64_t seed_ = 0;
  std::vector<int32_t> labels_, sorted_;
  std::vector<int64_t> begin_, count_;
};

}  // namespace islkd::distill
