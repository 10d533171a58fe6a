// What the frozen teacher gives a step: its logits, either computed once for every un-augmented training instance
// and gathered per batch (the cache: n_train x classes floats on the host), or from the live (eval-mode, folded)
// teacher at every step when the inputs are augmented. The cache also feeds the ISL difficulty scores.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "engine/module.h"
#include "engine/train/dist.h"
#include "engine/tensor.h"

namespace islkd::train {

class TeacherTargets {
 public:
  // `teacher` is in eval mode with its batch norms folded (nn::fold_batch_norm); it is only ever run without grad.
  TeacherTargets(std::shared_ptr<Module> teacher, std::shared_ptr<const data::Dataset> train, int64_t n_train,
                 int64_t num_classes, const data::LoaderOptions& loader_options);

  Module& model() { return *teacher_; }
  // Computes the cache on first use (prints how long it took); later calls do nothing.
  void cache();
  // Data-parallel: cache() computes this rank's shard of the instances (rank r: [r n / W, (r+1) n / W)) and
  // all-gathers the others', so every rank holds the same n x classes logits for 1/W of the teacher's forwards.
  void shard_over(std::shared_ptr<dist::Communicator> comm) { comm_ = std::move(comm); }
  bool cached() const { return !logits_.empty(); }
  const std::vector<float>& logits() const { return logits_; }  // n_train x classes, after cache()
  double cache_seconds() const { return cache_seconds_; }
  // The cached logits of a batch's instances, rows x classes on the loader's device (CUDA: through pinned staging).
  Tensor gather(const std::vector<int64_t>& indices) const;
  // The live teacher's logits (no grad).
  Tensor live(const Tensor& images);
  // The live teacher's logits and the named features (no grad): for objectives that distill features (no cache).
  FeaturesOutput live_features(const Tensor& images, const std::vector<std::string>& names);

 private:
  std::shared_ptr<Module> teacher_;
  std::shared_ptr<const data::Dataset> train_;
  int64_t n_train_, num_classes_;
  data::LoaderOptions loader_options_;
  std::vector<float> logits_;
  double cache_seconds_ = 0.0;
  std::shared_ptr<dist::Communicator> comm_;  // null: one process
};

}  // namespace islkd::train
