// The ISL curriculum as the loader's sampler: each epoch's instance list is the curriculum's.
#pragma once
#include <memory>
#include <vector>

#include "data/sampler.h"
#include "engine/distill/curriculum.h"

namespace islkd::train {

class CurriculumSampler : public data::Sampler {
 public:
  explicit CurriculumSampler(std::shared_ptr<const distill::Curriculum> c) : c_(std::move(c)) {}
  std::vector<int64_t> indices(int64_t epoch) override { return c_->epoch_indices(static_cast<int>(epoch)); }

 private:
  std::shared_ptr<const distill::Curriculum> c_;
};

}  // namespace islkd::train
