// `rkd`: relational KD (Park et al. 2019) as RepDistiller trains it: ce_weight * CE + beta * ops::rkd_loss (w_d *
// distance + w_a * angle) on the pooled feature vector feat[-1] of the student and the teacher (train_student.py:
// `f_s = feat_s[-1]`), no KD term. Settings {"beta", "ce_weight", "w_d", "w_a"}; the defaults are RepDistiller's
// scripts/run_cifar_distill.sh `--distill rkd -a 0 -b 1` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 1) and
// distiller_zoo/RKD.py RKDLoss(w_d=25, w_a=50).
#include <cmath>

#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

constexpr float kRKDBeta = 1.0f;          // run_cifar_distill.sh -b
constexpr float kRKDDistance = 25.0f;     // RKDLoss w_d
constexpr float kRKDAngle = 50.0f;        // RKDLoss w_a

// The name of feat[-1] (the pooled vector) of a model's feature list.
std::string feature_name(const Module& m) {
  const std::vector<std::string> names = m.feature_names();
  ISLKD_CHECK(!names.empty(), "objective rkd: the model has no features; rkd uses feat[-1]");
  return names.back();
}

class RKDObjective : public Objective {
 public:
  RKDObjective(float beta, float ce_weight, float w_d, float w_a)
      : beta_(beta), ce_weight_(ce_weight), w_d_(w_d), w_a_(w_a) {}
  std::string name() const override { return "rkd"; }
  nlohmann::json config() const override {
    return {{"beta", beta_}, {"ce_weight", ce_weight_}, {"w_d", w_d_}, {"w_a", w_a_}};
  }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.features = true;
    if (!student_name_.empty()) n.student_features = {student_name_}, n.teacher_features = {teacher_name_};
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective rkd needs a student and a teacher");
    student_name_ = feature_name(*ctx.student);
    teacher_name_ = feature_name(*ctx.teacher);
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ISLKD_CHECK(!student_name_.empty(), "objective rkd was not bound to the models (Objective::bind)");
    auto s = in.student_features.find(student_name_);
    auto t = in.teacher_features.find(teacher_name_);
    ISLKD_CHECK(s != in.student_features.end() && t != in.teacher_features.end(), "objective rkd: no '",
                student_name_, "' / '", teacher_name_, "' feature of the student / teacher in the step's inputs");
    Tensor ce = ops::cross_entropy(in.student_logits, in.labels);
    if (ce_weight_ != 1.0f) ce = ops::scale(ce, ce_weight_);
    Tensor r = ops::rkd_loss(s->second, t->second, w_d_, w_a_);
    return ops::add(ce, beta_ != 1.0f ? ops::scale(r, beta_) : r);
  }

 private:
  float beta_, ce_weight_, w_d_, w_a_;
  std::string student_name_, teacher_name_;
};

}  // namespace

std::unique_ptr<Objective> make_rkd_objective(const nlohmann::json& options) {
  float beta = kRKDBeta, ce_weight = 1.0f, w_d = kRKDDistance, w_a = kRKDAngle;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "beta" || key == "ce_weight" || key == "w_d" || key == "w_a", "objective rkd: unknown setting '",
                key, "' (expected beta, ce_weight, w_d, w_a)");
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective rkd: ", key,
                " must be a number >= 0, got ", v.dump());
    (key == "beta" ? beta : key == "ce_weight" ? ce_weight : key == "w_d" ? w_d : w_a) = v.get<float>();
  }
  return std::make_unique<RKDObjective>(beta, ce_weight, w_d, w_a);
}

}  // namespace islkd::distill
