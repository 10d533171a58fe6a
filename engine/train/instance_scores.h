// The ISL phase boundary's input: every training instance's difficulty, by the curriculum's measure, from a frozen
// snapshot of the student (eval mode, no grad; its mode is restored) and the teacher's cached logits.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "engine/distill/curriculum.h"
#include "engine/module.h"
#include "engine/train/teacher_targets.h"

namespace islkd::train {

struct ScoringData {
  std::shared_ptr<const data::Dataset> train;
  int64_t n_train = 0, num_classes = 0;
  data::LoaderOptions loader_options;
  // Data-parallel: the student scores only instances [shard_begin, shard_end) (-1: up to n_train); the others' scores
  // are left 0 for the ranks' all-gather to fill.
  int64_t shard_begin = 0, shard_end = -1;
};

// ops::difficulty_scores of the student against the cached teacher; `labels_override` (one per training instance)
// replaces the labels, e.g. by the teacher's predictions.
std::vector<float> score_instances(Module& student, const TeacherTargets& teacher, const ScoringData& d,
                                   const KDLossParams& kdp, DifficultyMeasure measure,
                                   const std::vector<int32_t>* labels_override = nullptr);

// The scores for the boundary at `epoch` (teacher.cache() must have run).
std::vector<float> curriculum_scores(const distill::Curriculum& c, int epoch, Module& student,
                                     const TeacherTargets& teacher, const ScoringData& d, const KDLossParams& kdp);

// The training labels, one per instance of the (possibly limited) training split.
std::vector<int32_t> train_labels(const data::Dataset& train, int64_t n_train);

}  // namespace islkd::train
