// `fitnet`: FitNets (Romero et al. 2015) as RepDistiller trains them: ce_weight * CE + beta * MSE(ConvReg(student's
// hint feature), teacher's hint feature) (distill::fitnet_hint_loss), on the middle stage's feature `feat<hint_layer>`,
// no KD term. The regressor (conv + BN + ReLU, distill::ConvReg) is the objective's trainable parameters: optimized,
// checkpointed as objective.fitnet.* and resumed with the student. Settings {"beta", "ce_weight", "hint_layer"}; the
// defaults are RepDistiller's scripts/run_cifar_distill.sh `--distill hint -r 1 -a 0 -b 100` and train_student.py's
// --hint_layer 2 (gamma (CE) 1, alpha (KD) 0, beta 100). RepDistiller's hint stage-1 pre-training is not done (its
// train_student.py trains the regressor jointly with the student, as here).
#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/feature_losses.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

class FitNetObjective : public Objective {
 public:
  FitNetObjective(float beta, float ce_weight, int64_t hint_layer)
      : beta_(beta), ce_weight_(ce_weight), hint_layer_(hint_layer), hint_("feat" + std::to_string(hint_layer)) {}
  std::string name() const override { return "fitnet"; }
  nlohmann::json config() const override {
    return {{"beta", beta_}, {"ce_weight", ce_weight_}, {"hint_layer", hint_layer_}};
  }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.student_features = {hint_};
    n.teacher_features = {hint_};
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective fitnet needs a student and a teacher");
    const Shape s = feature_shapes(*ctx.student, {hint_}, ctx.input, "fitnet")[0],
                t = feature_shapes(*ctx.teacher, {hint_}, ctx.input, "fitnet")[0];
    reg_ = std::make_shared<ConvReg>(s, t, ctx.seed, /*use_relu=*/true);  // RepDistiller's ConvReg default
  }
  std::vector<std::pair<std::string, Tensor>> parameters() const override {
    std::vector<std::pair<std::string, Tensor>> ps;
    if (reg_)
      for (auto& [n, t] : reg_->named_parameters()) ps.emplace_back("fitnet." + n, t);
    return ps;
  }
  void to(Device d) override {
    if (reg_) reg_->to(d);
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ISLKD_CHECK(reg_, "objective fitnet was not bound to the models (Objective::bind)");
    auto s = in.student_features.find(hint_), t = in.teacher_features.find(hint_);
    ISLKD_CHECK(s != in.student_features.end() && t != in.teacher_features.end(), "objective fitnet: no '", hint_,
                "' feature of the student or the teacher in the step's inputs");
    Tensor ce = ops::cross_entropy(in.student_logits, in.labels);
    if (ce_weight_ != 1.0f) ce = ops::scale(ce, ce_weight_);
    return ops::add(ce, ops::scale(fitnet_hint_loss(*reg_, s->second, t->second), beta_));
  }

 private:
  float beta_, ce_weight_;
  int64_t hint_layer_;
  std::string hint_;
  std::shared_ptr<ConvReg> reg_;
};

}  // namespace

std::unique_ptr<Objective> make_fitnet_objective(const nlohmann::json& options) {
  float beta = kFitNetBeta, ce_weight = 1.0f;
  int64_t hint_layer = kFitNetHintLayer;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "beta" || key == "ce_weight" || key == "hint_layer", "objective fitnet: unknown setting '", key,
                "' (expected beta, ce_weight, hint_layer)");
    if (key == "hint_layer") {
      ISLKD_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, "objective fitnet: hint_layer must be an integer "
                  ">= 0, got ", v.dump());
      hint_layer = v.get<int64_t>();
      continue;
    }
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective fitnet: ", key,
                " must be a number >= 0, got ", v.dump());
    (key == "beta" ? beta : ce_weight) = v.get<float>();
  }
  return std::make_unique<FitNetObjective>(beta, ce_weight, hint_layer);
}

}  // namespace islkd::distill
