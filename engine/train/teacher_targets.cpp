// The teacher's logits for a step: cached once on un-augmented instances, or live.
#include "engine/train/teacher_targets.h"

#include <algorithm>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/train/dist_shards.h"
#include "engine/train/run_log.h"
#include "kernels/common/checked.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::train {

TeacherTargets::TeacherTargets(std::shared_ptr<Module> teacher, std::shared_ptr<const data::Dataset> train,
                               int64_t n_train, int64_t num_classes, const data::LoaderOptions& loader_options)
    : teacher_(std::move(teacher)),
      train_(std::move(train)),
      n_train_(n_train),
      num_classes_(num_classes),
      loader_options_(loader_options) {}

Tensor TeacherTargets::gather(const std::vector<int64_t>& indices) const {
  const int64_t rows = static_cast<int64_t>(indices.size()), c = num_classes_;
  std::vector<float> t(static_cast<size_t>(rows * c));
  for (int64_t r = 0; r < rows; ++r)
    std::copy(logits_.begin() + indices[static_cast<size_t>(r)] * c,
              logits_.begin() + (indices[static_cast<size_t>(r)] + 1) * c, t.begin() + r * c);
  const Device device = loader_options_.device;
  if (device != Device::CUDA) return Tensor::from_vector(t, {rows, c}, device);
  // Through pinned staging on the copy stream: no pageable copy, no host wait in the step.
  Tensor d = Tensor::empty({rows, c}, Device::CUDA);
  cuda::memcpy_h2d_staged(d.data(), t.data(), t.size() * sizeof(float));
  return d;
}

Tensor TeacherTargets::live(const Tensor& images) {
  NoGradGuard no_grad;
  return (*teacher_)(images);
}

FeaturesOutput TeacherTargets::live_features(const Tensor& images, const std::vector<std::string>& names) {
  NoGradGuard no_grad;
  return teacher_->forward_features(images, FeatureRequest{names, false});
}

void TeacherTargets::cache() {
  if (!logits_.empty()) return;
  Stopwatch clock;
  const int64_t c = num_classes_;
  const int ranks = comm_ ? comm_->size() : 1, rank = comm_ ? comm_->rank() : 0;
  std::vector<int64_t> shard(static_cast<size_t>(dist::shard_end(n_train_, rank, ranks) -
                                                 dist::shard_begin(n_train_, rank, ranks)));
  for (size_t i = 0; i < shard.size(); ++i) shard[i] = dist::shard_begin(n_train_, rank, ranks) + static_cast<int64_t>(i);
  data::Loader loader(train_, data::Transform(data::eval_transform(*train_), train_->channels(), train_->height(),
                                              train_->width()),
                      std::make_shared<data::ListSampler>(std::move(shard)), loader_options_);
  logits_.assign(static_cast<size_t>(checked_mul(n_train_, c, "teacher logits (instances x classes)")), 0.0f);
  NoGradGuard no_grad;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (loader_options_.device == Device::CUDA) device::wait_prefetch();
    std::vector<float> v = (*teacher_)(b.images).to_vector();
    for (size_t r = 0; r < b.indices.size(); ++r)
      std::copy(v.begin() + static_cast<int64_t>(r) * c, v.begin() + static_cast<int64_t>(r + 1) * c,
                logits_.begin() + b.indices[r] * c);
  }
  if (comm_) dist::allgather_shards(*comm_, logits_, n_train_, c);
  cache_seconds_ = clock.seconds();
  if (ranks > 1)
    std::printf("train_kd: teacher logits of %lld un-augmented training instances cached in %.1fs (%d shards, "
                "all-gathered)\n",
                static_cast<long long>(n_train_), cache_seconds_, ranks);
  else
    std::printf("train_kd: teacher logits of %lld un-augmented training instances cached in %.1fs\n",
                static_cast<long long>(n_train_), cache_seconds_);
  std::fflush(stdout);
}

}  // namespace islkd::train
