// `sp`: similarity-preserving KD (Tung & Mori 2019) as RepDistiller trains it: ce_weight * CE + beta * ops::sp_loss
// on the last stage's feature map feat[-2] of the student and the teacher (train_student.py: `g_s = [feat_s[-2]]`),
// no KD term. Settings {"beta", "ce_weight"}; the defaults are RepDistiller's scripts/run_cifar_distill.sh
// `--distill similarity -a 0 -b 3000` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 3000).
#include <cmath>

#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

constexpr float kSPBeta = 3000.0f;  // run_cifar_distill.sh -b

// The name of feat[-2] of a model's feature list.
std::string feature_name(const Module& m) {
  const std::vector<std::string> names = m.feature_names();
  ISLKD_CHECK(names.size() >= 2, "objective sp: the model has ", names.size(), " features; sp uses feat[-2]");
  return names[names.size() - 2];
}

class SPObjective : public Objective {
 public:
  SPObjective(float beta, float ce_weight) : beta_(beta), ce_weight_(ce_weight) {}
  std::string name() const override { return "sp"; }
  nlohmann::json config() const override { return {{"beta", beta_}, {"ce_weight", ce_weight_}}; }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.features = true;
    if (!student_name_.empty()) n.student_features = {student_name_}, n.teacher_features = {teacher_name_};
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective sp needs a student and a teacher");
    student_name_ = feature_name(*ctx.student);
    teacher_name_ = feature_name(*ctx.teacher);
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ISLKD_CHECK(!student_name_.empty(), "objective sp was not bound to the models (Objective::bind)");
    auto s = in.student_features.find(student_name_);
    auto t = in.teacher_features.find(teacher_name_);
    ISLKD_CHECK(s != in.student_features.end() && t != in.teacher_features.end(), "objective sp: no '",
                student_name_, "' / '", teacher_name_, "' feature of the student / teacher in the step's inputs");
    Tensor ce = ops::cross_entropy(in.student_logits, in.labels);
    if (ce_weight_ != 1.0f) ce = ops::scale(ce, ce_weight_);
    return ops::add(ce, ops::scale(ops::sp_loss(s->second, t->second), beta_));
  }

 private:
  float beta_, ce_weight_;
  std::string student_name_, teacher_name_;
};

}  // namespace

std::unique_ptr<Objective> make_sp_objective(const nlohmann::json& options) {
  float beta = kSPBeta, ce_weight = 1.0f;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "beta" || key == "ce_weight", "objective sp: unknown setting '", key,
                "' (expected beta, ce_weight)");
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective sp: ", key,
                " must be a number >= 0, got ", v.dump());
    (key == "beta" ? beta : ce_weight) = v.get<float>();
  }
  return std::make_unique<SPObjective>(beta, ce_weight);
}

}  // namespace islkd::distill
