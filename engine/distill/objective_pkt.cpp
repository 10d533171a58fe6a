// `pkt`: probabilistic knowledge transfer (Passalis & Tefas 2018) as RepDistiller trains it: ce_weight * CE + beta *
// ops::pkt_loss on the pooled feature vector feat[-1] of the student and the teacher (train_student.py: `g_s =
// [feat_s[-1]]`), no KD term. Settings {"beta", "ce_weight"}; the defaults are RepDistiller's
// scripts/run_cifar_distill.sh `--distill pkt -a 0 -b 30000` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 30000).
#include "engine/distill/one_feature_objective.h"
#include "engine/ops.h"

namespace islkd::distill {

std::unique_ptr<Objective> make_pkt_objective(const nlohmann::json& options) {
  return make_one_feature_objective({"pkt", 1, 30000.0f /* run_cifar_distill.sh -b */, ops::pkt_loss}, options);
}

}  // namespace islkd::distill
