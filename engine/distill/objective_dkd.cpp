// `dkd`: Decoupled KD (Zhao et al. 2022), ce_weight * CE + warm-up * (alpha * TCKD + beta * NCKD) by the fused
// dkd_loss op, the warm-up factor min(epoch / warmup_epochs, 1) of the (1-based) epoch. Settings {"temperature",
// "alpha", "beta", "ce_weight", "warmup_epochs"}; the defaults are mdistiller's configs/cifar100/dkd/*.yaml
// (DKD.CE_WEIGHT 1.0, DKD.ALPHA 1.0, DKD.BETA 8.0, DKD.T 4.0, DKD.WARMUP 20; mdistiller/distillers/DKD.py).
#include <cmath>

#include "engine/distill/dkd.h"
#include "engine/distill/objective.h"
#include "engine/ops.h"
#include "kernels/common/error.h"

namespace islkd::distill {

namespace {

class DKDObjective : public Objective {
 public:
  DKDObjective(const ops::DKDLossParams& p, int64_t warmup_epochs) : p_(p), warmup_epochs_(warmup_epochs) {}
  std::string name() const override { return "dkd"; }
  nlohmann::json config() const override {
    return {{"temperature", p_.temperature}, {"alpha", p_.alpha},  {"beta", p_.beta},
            {"ce_weight", p_.ce_weight},     {"warmup_epochs", warmup_epochs_}};
  }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.teacher_logits = true;
    return n;
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ops::DKDLossParams p = p_;
    p.warmup = dkd_warmup_factor(in.epoch + 1, warmup_epochs_);  // the Trainer's epochs count from 0
    return ops::dkd_loss(in.student_logits, in.teacher_logits, in.labels, p).loss;
  }

 private:
  ops::DKDLossParams p_;
  int64_t warmup_epochs_;
};

}  // namespace

std::unique_ptr<Objective> make_dkd_objective(const nlohmann::json& options) {
  ops::DKDLossParams p;  // mdistiller's defaults (engine/ops.h)
  int64_t warmup = kDKDWarmupEpochs;
  for (const auto& [key, v] : options.items()) {
    ISLKD_CHECK(key == "temperature" || key == "alpha" || key == "beta" || key == "ce_weight" ||
                    key == "warmup_epochs",
                "objective dkd: unknown setting '", key, "' (expected temperature, alpha, beta, ce_weight, warmup_epochs)");
    if (key == "warmup_epochs") {
      ISLKD_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, "objective dkd: warmup_epochs must be an integer >= 0, got ",
                  v.dump());
      warmup = v.get<int64_t>();
      continue;
    }
    ISLKD_CHECK(v.is_number(), "objective dkd: ", key, " must be a number, got ", v.dump());
    const float x = v.get<float>();
    ISLKD_CHECK(std::isfinite(x) && (key == "temperature" ? x > 0 : x >= 0), "objective dkd: ", key, " must be ",
                key == "temperature" ? "> 0" : ">= 0", ", got ", v.dump());
    (key == "temperature" ? p.temperature : key == "alpha" ? p.alpha : key == "beta" ? p.beta : p.ce_weight) = x;
  }
  return std::make_unique<DKDObjective>(p, warmup);
}

}  // namespace islkd::distill
