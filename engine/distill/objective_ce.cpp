// `ce`: the student alone, cross-entropy on the labels (no teacher).
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

class CrossEntropyObjective : public Objective {
 public:
  std::string name() const override { return "ce"; }
  nlohmann::json config() const override { return nlohmann::json::object(); }
  Tensor loss(const ObjectiveInputs& in) override { return ops::cross_entropy(in.student_logits, in.labels); }
};

}  // namespace

std::unique_ptr<Objective> make_ce_objective(const nlohmann::json& options) {
  ISLKD_CHECK(options.is_object() && options.empty(), "objective ce takes no settings, got ", options.dump());
  return std::make_unique<CrossEntropyObjective>();
}

}  // namespace islkd::distill
