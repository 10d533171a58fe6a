// make_one_feature_objective: see one_feature_objective.h.
#include "engine/distill/one_feature_objective.h"

#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

class OneFeatureObjective : public Objective {
 public:
  OneFeatureObjective(const OneFeatureSpec& spec, float beta, float ce_weight)
      : spec_(spec), beta_(beta), ce_weight_(ce_weight) {}
  std::string name() const override { return spec_.name; }
  nlohmann::json config() const override { return {{"beta", beta_}, {"ce_weight", ce_weight_}}; }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.features = true;
    if (!student_name_.empty()) n.student_features = {student_name_}, n.teacher_features = {teacher_name_};
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective ", spec_.name, " needs a student and a teacher");
    student_name_ = feature_name(*ctx.student);
    teacher_name_ = feature_name(*ctx.teacher);
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ISLKD_CHECK(!student_name_.empty(), "objective ", spec_.name, " was not bound to the models (Objective::bind)");
    auto s = in.student_features.find(student_name_);
    auto t = in.teacher_features.find(teacher_name_);
    ISLKD_CHECK(s != in.student_features.end() && t != in.teacher_features.end(), "objective ", spec_.name,
                ": no '", student_name_, "' / '", teacher_name_,
                "' feature of the student / teacher in the step's inputs");
    Tensor ce = ops::cross_entropy(in.student_logits, in.labels);
    if (ce_weight_ != 1.0f) ce = ops::scale(ce, ce_weight_);
    return ops::add(ce, ops::scale(spec_.loss(s->second, t->second), beta_));
  }

 private:
  // feat[-from_end] of a model's feature list.
  std::string feature_name(const Module& m) const {
    const std::vector<std::string> names = m.feature_names();
    ISLKD_CHECK(static_cast<int>(names.size()) >= spec_.from_end, "objective ", spec_.name, ": the model has ",
                names.size(), " features; ", spec_.name, " uses feat[-", spec_.from_end, "]");
    return names[names.size() - spec_.from_end];
  }

  OneFeatureSpec spec_;
  float beta_, ce_weight_;
  std::string student_name_, teacher_name_;
};

}  // namespace

std::unique_ptr<Objective> make_one_feature_objective(const OneFeatureSpec& spec, const nlohmann::json& options) {
  float beta = spec.beta, ce_weight = 1.0f;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "beta" || key == "ce_weight", "objective ", spec.name, ": unknown setting '", key,
                "' (expected beta, ce_weight)");
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective ", spec.name,
                ": ", key, " must be a number >= 0, got ", v.dump());
    (key == "beta" ? beta : ce_weight) = v.get<float>();
  }
  return std::make_unique<OneFeatureObjective>(spec, beta, ce_weight);
}

}  // namespace islkd::distill
