// `pkt`: probabilistic knowledge transfer (Passalis & Tefas 2018) as RepDistiller trains it: ce_weight * CE + beta *
// ops::pkt_loss on the pooled feature vector feat[-1] of the student and the teacher (train_student.py: `g_s =
// [feat_s[-1]]`), no KD term. Settings {"beta", "ce_weight"}; the defaults are RepDistiller's
// scripts/run_cifar_distill.sh `--distill pkt -a 0 -b 30000` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 30000).
#include <cmath>

#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

constexpr float kPKTBeta = 30000.0f;  // run_cifar_distill.sh -b

// The name of feat[-1] of a model's feature list.
std::string feature_name(const Module& m) {
  const std::vector<std::string> names = m.feature_names();
  ISLKD_CHECK(names.size() >= 1, "objective pkt: the model has ", names.size(), " features; pkt uses feat[-1]");
  return names[names.size() - 1];
}

class PKTObjective : public Objective {
 public:
  PKTObjective(float beta, float ce_weight) : beta_(beta), ce_weight_(ce_weight) {}
  std::string name() const override { return "pkt"; }
  nlohmann::json config() const override { return {{"beta", beta_}, {"ce_weight", ce_weight_}}; }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.features = true;
    if (!student_name_.empty()) n.student_features = {student_name_}, n.teacher_features = {teacher_name_};
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective pkt needs a student and a teacher");
    student_name_ = feature_name(*ctx.student);
    teacher_name_ = feature_name(*ctx.teacher);
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ISLKD_CHECK(!student_name_.empty(), "objective pkt was not bound to the models (Objective::bind)");
    auto s = in.student_features.find(student_name_);
    auto t = in.teacher_features.find(teacher_name_);
    ISLKD_CHECK(s != in.student_features.end() && t != in.teacher_features.end(), "objective pkt: no '",
                student_name_, "' / '", teacher_name_, "' feature of the student / teacher in the step's inputs");
    Tensor ce = ops::cross_entropy(in.student_logits, in.labels);
    if (ce_weight_ != 1.0f) ce = ops::scale(ce, ce_weight_);
    return ops::add(ce, ops::scale(ops::pkt_loss(s->second, t->second), beta_));
  }

 private:
  float beta_, ce_weight_;
  std::string student_name_, teacher_name_;
};

}  // namespace

std::unique_ptr<Objective> make_pkt_objective(const nlohmann::json& options) {
  float beta = kPKTBeta, ce_weight = 1.0f;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "beta" || key == "ce_weight", "objective pkt: unknown setting '", key,
                "' (expected beta, ce_weight)");
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective pkt: ", key,
                " must be a number >= 0, got ", v.dump());
    (key == "beta" ? beta : ce_weight) = v.get<float>();
  }
  return std::make_unique<PKTObjective>(beta, ce_weight);
}

}  // namespace islkd::distill
