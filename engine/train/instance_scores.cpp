// Difficulty scores of every training instance for an ISL phase boundary.
#include "engine/train/instance_scores.h"

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/train/run_log.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::train {

std::vector<int32_t> train_labels(const data::Dataset& train, int64_t n_train) {
  const auto& l = train.labels();
  return std::vector<int32_t>(l.begin(), l.begin() + n_train);
}

std::vector<float> score_instances(Module& student, const TeacherTargets& teacher, const ScoringData& d,
                                   const KDLossParams& kdp, DifficultyMeasure measure,
                                   const std::vector<int32_t>* labels_override) {
  const Device device = d.loader_options.device;
  const int64_t end = d.shard_end < 0 ? d.n_train : d.shard_end;
  ISLKD_CHECK(d.shard_begin >= 0 && d.shard_begin <= end && end <= d.n_train, "score_instances: shard [",
              d.shard_begin, ", ", end, ") of ", d.n_train, " instances");
  std::vector<int64_t> shard(static_cast<size_t>(end - d.shard_begin));
  for (size_t i = 0; i < shard.size(); ++i) shard[i] = d.shard_begin + static_cast<int64_t>(i);
  data::Loader loader(d.train, data::Transform(data::eval_transform(*d.train), d.train->channels(), d.train->height(),
                                               d.train->width()),
                      std::make_shared<data::ListSampler>(std::move(shard)), d.loader_options);
  std::vector<float> scores(static_cast<size_t>(d.n_train), 0.0f);
  NoGradGuard no_grad;
  const bool was_training = student.is_training();
  student.eval();
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (device == Device::CUDA) device::wait_prefetch();
    Tensor logits = student(b.images);
    const int64_t rows = static_cast<int64_t>(b.indices.size());
    Tensor t = teacher.gather(b.indices);
    Tensor labels = b.labels;
    if (labels_override) {
      std::vector<int32_t> l(b.indices.size());
      for (size_t r = 0; r < l.size(); ++r) l[r] = (*labels_override)[static_cast<size_t>(b.indices[r])];
      labels = Tensor::from_labels(l, device);
    }
    std::vector<float> sc = ops::difficulty_scores(logits, t, labels, measure, kdp).to_vector();
    for (int64_t r = 0; r < rows; ++r)
      scores[static_cast<size_t>(b.indices[static_cast<size_t>(r)])] = sc[static_cast<size_t>(r)];
  }
  student.train(was_training);
  return scores;
}

std::vector<float> curriculum_scores(const distill::Curriculum& c, int epoch, Module& student,
                                     const TeacherTargets& teacher, const ScoringData& d, const KDLossParams& kdp) {
  const distill::Measure m = c.options().measure;
  if (m == distill::Measure::Random) return c.random_scores(epoch);
  if (m == distill::Measure::Disagreement) {
    const std::vector<int32_t> pred = distill::teacher_predictions(teacher.logits(), d.num_classes);
    return score_instances(student, teacher, d, kdp, DifficultyMeasure::CE, &pred);
  }
  if (!distill::needs_student(m))
    return distill::teacher_difficulty(teacher.logits(), train_labels(*d.train, d.n_train), d.num_classes, m);
  return score_instances(student, teacher, d, kdp, distill::student_measure(m));
}

}  // namespace islkd::train
