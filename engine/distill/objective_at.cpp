// `at`: attention transfer (Zagoruyko & Komodakis 2017) as RepDistiller trains it: ce_weight * CE + beta * sum of
// the AT losses over the student/teacher stage features feat[1:-1] (distill::at_loss_sum; no KD term). Settings
// {"beta", "ce_weight"}; the defaults are RepDistiller's scripts/run_cifar_distill.sh `--distill attention -r 1 -a 0
// -b 1000` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 1000).
#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/feature_losses.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

class ATObjective : public Objective {
 public:
  ATObjective(float beta, float ce_weight) : beta_(beta), ce_weight_(ce_weight) {}
  std::string name() const override { return "at"; }
  nlohmann::json config() const override { return {{"beta", beta_}, {"ce_weight", ce_weight_}}; }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.features = true;
    n.student_features = student_names_, n.teacher_features = teacher_names_;
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective at needs a student and a teacher");
    student_names_ = at_feature_names(*ctx.student);
    teacher_names_ = at_feature_names(*ctx.teacher);
    ISLKD_CHECK(student_names_.size() == teacher_names_.size(), "objective at: the student has ",
                student_names_.size(), " stage features, the teacher ", teacher_names_.size(),
                " (RepDistiller pairs feat[1:-1] one to one)");
  }
  Tensor loss(const ObjectiveInputs& in) override {
    std::vector<Tensor> s, t;
    for (const auto& n : student_names_) s.push_back(feature(in.student_features, n, "student"));
    for (const auto& n : teacher_names_) t.push_back(feature(in.teacher_features, n, "teacher"));
    Tensor ce = ops::cross_entropy(in.student_logits, in.labels);
    if (ce_weight_ != 1.0f) ce = ops::scale(ce, ce_weight_);
    return ops::add(ce, at_loss_sum(s, t, beta_));
  }

 private:
  static Tensor feature(const std::map<std::string, Tensor>& m, const std::string& name, const char* who) {
    auto it = m.find(name);
    ISLKD_CHECK(it != m.end(), "objective at: no ", who, " feature '", name, "' in the step's inputs");
    return it->second;
  }
  float beta_, ce_weight_;
  std::vector<std::string> student_names_, teacher_names_;
};

}  // namespace

std::unique_ptr<Objective> make_at_objective(const nlohmann::json& options) {
  float beta = kATBeta, ce_weight = 1.0f;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "beta" || key == "ce_weight", "objective at: unknown setting '", key,
                "' (expected beta, ce_weight)");
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective at: ", key,
                " must be a number >= 0, got ", v.dump());
    (key == "beta" ? beta : ce_weight) = v.get<float>();
  }
  return std::make_unique<ATObjective>(beta, ce_weight);
}

}  // namespace islkd::distill
