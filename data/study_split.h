// The conditions of the ISL study (issue 13) as views of a training split: a validation split held out from the
// student's training set, and symmetric label noise on what the student trains on. The readers stay untouched.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"

namespace islkd::data {

// Instances base[indices[i]] with the given labels (one per index): a subset, relabelled or not. Shares the base.
class DatasetView : public Dataset {
 public:
  DatasetView(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices, std::vector<int32_t> labels);
  void read(int64_t i, uint8_t* out) const override;
  bool has_train_crop() const override { return base_->has_train_crop(); }
  // The base's crop of base instance indices[i] (keyed by the base's index).
  void read_train_crop(int64_t i, uint8_t* out, uint64_t seed, int64_t epoch) const override;
  const std::vector<int64_t>& base_indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

// The first n instances of `base` split into (train, validation): `n_val` of them, drawn by a seeded shuffle
// (seed = split_seed, independent of the run's seed so every run of a study validates on the same instances),
// form the validation view; the rest, in their original order, the training view. Both keep the clean labels.
struct HeldOut {
  std::shared_ptr<const Dataset> train, validation;
};
HeldOut hold_out_validation(const std::shared_ptr<const Dataset>& base, int64_t n, int64_t n_val,
                            uint64_t split_seed = 0);

// Symmetric label noise: each label is replaced, with probability p, by one of the other classes drawn uniformly;
// each instance's draw is keyed by (seed, its index), so the noise does not depend on thread counts or order.
std::vector<int32_t> symmetric_label_noise(const std::vector<int32_t>& labels, int num_classes, double p,
                                           uint64_t seed);

// A view of the first n instances of `base` with noisy labels (symmetric_label_noise); p = 0 returns them clean.
std::shared_ptr<const Dataset> with_label_noise(const std::shared_ptr<const Dataset>& base, int64_t n, double p,
                                                uint64_t seed);

}  // namespace islkd::data
