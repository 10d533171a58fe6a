// Validation hold-out and symmetric label noise as views over a split (see the header).
#include "data/study_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "data/transforms.h"
#include "kernels/common/error.h"

namespace islkd::data {

DatasetView::DatasetView(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices,
                         std::vector<int32_t> labels)
    : base_(std::move(base)), indices_(std::move(indices)) {
  ISLKD_CHECK(base_, "dataset view: no base dataset");
  ISLKD_CHECK(labels.size() == indices_.size(), "dataset view: ", labels.size(), " labels for ", indices_.size(),
              " instances");
  for (int64_t i : indices_)
    ISLKD_CHECK(i >= 0 && i < base_->size(), base_->source(), ": view index ", i, " out of range (", base_->size(),
                " instances)");
  for (int32_t y : labels)
    ISLKD_CHECK(y >= 0 && y < base_->num_classes(), base_->source(), ": view label ", y, " outside [0, ",
                base_->num_classes(), ")");
  c_ = base_->channels();
  h_ = base_->height();
  w_ = base_->width();
  class_names_ = base_->class_names();
  labels_ = std::move(labels);
  norm_ = base_->normalization();
  hflip_ = base_->hflip_makes_sense();
  source_ = base_->source();
}

void DatasetView::read(int64_t i, uint8_t* out) const {
  check_index(i);
  base_->read(indices_[static_cast<size_t>(i)], out);
}

void DatasetView::read_train_crop(int64_t i, uint8_t* out, uint64_t seed, int64_t epoch) const {
  check_index(i);
  base_->read_train_crop(indices_[static_cast<size_t>(i)], out, seed, epoch);
}

HeldOut hold_out_validation(const std::shared_ptr<const Dataset>& base, int64_t n, int64_t n_val,
                            uint64_t split_seed) {
  ISLKD_CHECK(n > 0 && n <= base->size(), "validation split: ", n, " instances asked of ", base->size());
  ISLKD_CHECK(n_val > 0 && n_val < n, "--val-split ", n_val, " must be in [1, ", n - 1, "] (the training split has ",
              n, " instances)");
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t r = random_bits(split_seed, -1, i, 0x56414C4944ull /* "VALID" */);
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  std::vector<int64_t> val(perm.begin(), perm.begin() + n_val), train(perm.begin() + n_val, perm.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  auto labels_of = [&](const std::vector<int64_t>& idx) {
    std::vector<int32_t> l(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) l[i] = base->label(idx[i]);
    return l;
  };
  HeldOut h;
  h.validation = std::make_shared<DatasetView>(base, val, labels_of(val));
  h.train = std::make_shared<DatasetView>(base, train, labels_of(train));
  return h;
}

std::vector<int32_t> symmetric_label_noise(const std::vector<int32_t>& labels, int num_classes, double p,
                                           uint64_t seed) {
  ISLKD_CHECK(std::isfinite(p) && p >= 0.0 && p <= 1.0, "--label-noise must be in [0, 1], got ", p);
  ISLKD_CHECK(num_classes >= 2 || p == 0.0, "label noise needs at least 2 classes, got ", num_classes);
  std::vector<int32_t> out = labels;
  for (size_t i = 0; i < out.size(); ++i) {
    // 53 bits of a uniform in [0, 1) decide whether to flip; another stream picks the new class.
    const double u = static_cast<double>(random_bits(seed, -2, static_cast<int64_t>(i), 0x4E4F495345ull) >> 11) *
                     0x1.0p-53;
    if (u >= p) continue;
    const uint64_t r = random_bits(seed, -2, static_cast<int64_t>(i), 0x464C4950ull /* "FLIP" */);
    const auto other = static_cast<int32_t>(r % static_cast<uint64_t>(num_classes - 1));
    out[i] = other >= out[i] ? other + 1 : other;
  }
  return out;
}

std::shared_ptr<const Dataset> with_label_noise(const std::shared_ptr<const Dataset>& base, int64_t n, double p,
                                                uint64_t seed) {
  ISLKD_CHECK(n > 0 && n <= base->size(), "label noise: ", n, " instances asked of ", base->size());
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  std::vector<int32_t> clean(base->labels().begin(), base->labels().begin() + n);
  return std::make_shared<DatasetView>(base, std::move(idx), symmetric_label_noise(clean, base->num_classes(), p, seed));
}

}  // namespace islkd::data
