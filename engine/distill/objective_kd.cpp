// `kd`: Hinton KD, alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE, by the fused kd_loss op.
// Settings {"temperature": T, "alpha": a} (kd_params_from_json: T > 0, 0 <= a <= 1).
#include "engine/distill/kd.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"

namespace islkd::distill {

namespace {

class KDObjective : public Objective {
 public:
  explicit KDObjective(const KDLossParams& p) : p_(p) {}
  std::string name() const override { return "kd"; }
  nlohmann::json config() const override { return kd_params_to_json(p_); }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.teacher_logits = true;
    return n;
  }
  Tensor loss(const ObjectiveInputs& in) override {
    return ops::kd_loss(in.student_logits, in.teacher_logits, in.labels, p_).loss;
  }

 private:
  KDLossParams p_;
};

}  // namespace

std::unique_ptr<Objective> make_kd_objective(const nlohmann::json& options) {
  for (const auto& [key, v] : options.items())
    ISLKD_CHECK(key == "temperature" || key == "alpha", "objective kd: unknown setting '", key,
                "' (expected temperature, alpha)");
  return std::make_unique<KDObjective>(kd_params_from_json(options));
}

}  // namespace islkd::distill
