// `vid`: variational information distillation (Ahn et al. 2019) as RepDistiller trains it: ce_weight * CE + beta *
// sum over the stage features feat[1:-1] of VIDLoss(student's, teacher's), no KD term. Each pair has its own
// VIDLoss (distiller_zoo/VID.py): a regressor of three bias-free 1x1 convolutions Cs -> Ct -> Ct -> Ct with ReLUs
// between (train_student.py builds VIDLoss(s, t, t): the middle width is the teacher's channels) predicting the
// teacher's feature as a Gaussian mean, and a learned per-channel variance softplus(log_scale) + eps, log_scale
// initialised to log(exp(init_pred_var - eps) - 1) (init_pred_var 5.0, eps 1e-5: VIDLoss's defaults). The larger map
// is average-pooled to the smaller one's size (VID.py's adaptive_avg_pool2d; here the sizes must divide). The
// regressors and log-variances are the objective's trainable parameters: optimized, checkpointed as
// objective.vid.<pair>.regressor.{0,2,4}.weight / objective.vid.<pair>.log_scale and resumed with the student.
// Settings {"beta", "ce_weight"}; the defaults are RepDistiller's scripts/run_cifar_distill.sh `--distill vid -a 0
// -b 1` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 1).
#include <cmath>

#include "engine/autograd.h"
#include "engine/distill/feature_losses.h"
#include "engine/distill/objective.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

constexpr float kVIDBeta = 1.0f;         // run_cifar_distill.sh -b
constexpr double kVIDInitPredVar = 5.0;  // VIDLoss(init_pred_var=5.0)
constexpr float kVIDEps = 1e-5f;         // VIDLoss(eps=1e-5)

// One VIDLoss: the regressor (parameter names as upstream's nn.Sequential) and the log-variance.
class VIDPair : public Module {
 public:
  VIDPair(int64_t s_channels, int64_t t_channels, nn::InitRng& rng) {
    conv0_ = register_module("regressor.0", std::make_shared<nn::Conv2d>(s_channels, t_channels, 1, 1, 0, 1, false, rng));
    conv2_ = register_module("regressor.2", std::make_shared<nn::Conv2d>(t_channels, t_channels, 1, 1, 0, 1, false, rng));
    conv4_ = register_module("regressor.4", std::make_shared<nn::Conv2d>(t_channels, t_channels, 1, 1, 0, 1, false, rng));
    const float init = static_cast<float>(std::log(std::exp(kVIDInitPredVar - kVIDEps) - 1.0));
    log_scale_ = &register_parameter("log_scale", Tensor::full({t_channels}, init));
  }
  Tensor forward(const Tensor& x) override { return (*conv4_)(ops::relu((*conv2_)(ops::relu((*conv0_)(x))))); }
  Tensor loss(Tensor s, Tensor t) {
    const int64_t sH = s.size(2), tH = t.size(2);
    if (sH > tH) {
      ISLKD_CHECK(sH % tH == 0 && s.size(3) % t.size(3) == 0, "objective vid: student map ", shape_str(s.shape()),
                  " does not pool to the teacher's ", shape_str(t.shape()));
      s = ops::avg_pool2d(s, sH / tH, sH / tH);
    } else if (sH < tH) {
      ISLKD_CHECK(tH % sH == 0 && t.size(3) % s.size(3) == 0, "objective vid: teacher map ", shape_str(t.shape()),
                  " does not pool to the student's ", shape_str(s.shape()));
      t = ops::avg_pool2d(t, tH / sH, tH / sH);
    }
    return ops::vid_loss(forward(s), t, *log_scale_, kVIDEps);
  }

 private:
  std::shared_ptr<nn::Conv2d> conv0_, conv2_, conv4_;
  Tensor* log_scale_;
};

class VIDObjective : public Objective {
 public:
  VIDObjective(float beta, float ce_weight) : beta_(beta), ce_weight_(ce_weight) {}
  std::string name() const override { return "vid"; }
  nlohmann::json config() const override { return {{"beta", beta_}, {"ce_weight", ce_weight_}}; }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.features = true;
    n.student_features = student_names_, n.teacher_features = teacher_names_;
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective vid needs a student and a teacher");
    student_names_ = at_feature_names(*ctx.student);
    teacher_names_ = at_feature_names(*ctx.teacher);
    ISLKD_CHECK(student_names_.size() == teacher_names_.size(), "objective vid: the student has ",
                student_names_.size(), " stage features, the teacher ", teacher_names_.size(),
                " (RepDistiller pairs feat[1:-1] one to one)");
    const auto s = feature_shapes(*ctx.student, student_names_, ctx.input, "vid");
    const auto t = feature_shapes(*ctx.teacher, teacher_names_, ctx.input, "vid");
    nn::InitRng rng(ctx.seed);
    pairs_.clear();
    for (size_t i = 0; i < s.size(); ++i) pairs_.push_back(std::make_shared<VIDPair>(s[i][1], t[i][1], rng));
  }
  std::vector<std::pair<std::string, Tensor>> parameters() const override {
    std::vector<std::pair<std::string, Tensor>> ps;
    for (size_t i = 0; i < pairs_.size(); ++i)
      for (auto& [n, t] : pairs_[i]->named_parameters()) ps.emplace_back("vid." + std::to_string(i) + "." + n, t);
    return ps;
  }
  void to(Device d) override {
    for (auto& p : pairs_) p->to(d);
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ISLKD_CHECK(!pairs_.empty(), "objective vid was not bound to the models (Objective::bind)");
    Tensor sum;
    for (size_t i = 0; i < pairs_.size(); ++i) {
      auto s = in.student_features.find(student_names_[i]);
      auto t = in.teacher_features.find(teacher_names_[i]);
      ISLKD_CHECK(s != in.student_features.end() && t != in.teacher_features.end(), "objective vid: no '",
                  student_names_[i], "' / '", teacher_names_[i], "' feature in the step's inputs");
      Tensor l = pairs_[i]->loss(s->second, t->second);
      sum = sum.defined() ? ops::add(sum, l) : l;
    }
    Tensor ce = ops::cross_entropy(in.student_logits, in.labels);
    if (ce_weight_ != 1.0f) ce = ops::scale(ce, ce_weight_);
    return ops::add(ce, beta_ != 1.0f ? ops::scale(sum, beta_) : sum);
  }

 private:
  float beta_, ce_weight_;
  std::vector<std::string> student_names_, teacher_names_;
  std::vector<std::shared_ptr<VIDPair>> pairs_;
};

}  // namespace

std::unique_ptr<Objective> make_vid_objective(const nlohmann::json& options) {
  float beta = kVIDBeta, ce_weight = 1.0f;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "beta" || key == "ce_weight", "objective vid: unknown setting '", key,
                "' (expected beta, ce_weight)");
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective vid: ", key,
                " must be a number >= 0, got ", v.dump());
    (key == "beta" ? beta : ce_weight) = v.get<float>();
  }
  return std::make_unique<VIDObjective>(beta, ce_weight);
}

}  // namespace islkd::distill
