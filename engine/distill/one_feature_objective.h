// The objectives that compare one named feature of the student with the teacher's through a fused loss op, with no
// state of their own (RepDistiller's sp on feat[-2], pkt on feat[-1]): ce_weight * CE + beta * loss(student's,
// teacher's). Each such objective is its file's constants and one call of make_one_feature_objective.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>

#include "engine/distill/objective.h"

namespace islkd::distill {

struct OneFeatureSpec {
  const char* name;        // the registry's name, also in every message
  int from_end;            // which feature: 1 = feat[-1] (the pooled vector), 2 = feat[-2] (the last stage's map)
  float beta;              // the loss weight's default (RepDistiller's run_cifar_distill.sh -b)
  Tensor (*loss)(const Tensor& student, const Tensor& teacher);
};

// Settings {"beta", "ce_weight"} (ce_weight default 1: RepDistiller's gamma); bad keys and values are islkd::Error
// naming the choices.
std::unique_ptr<Objective> make_one_feature_objective(const OneFeatureSpec& spec, const nlohmann::json& options);

}  // namespace islkd::distill
