// `sp`: similarity-preserving KD (Tung & Mori 2019) as RepDistiller trains it: ce_weight * CE + beta * ops::sp_loss
// on the last stage's feature map feat[-2] of the student and the teacher (train_student.py: `g_s = [feat_s[-2]]`),
// no KD term. Settings {"beta", "ce_weight"}; the defaults are RepDistiller's scripts/run_cifar_distill.sh
// `--distill similarity -a 0 -b 3000` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 3000).
#include "engine/distill/one_feature_objective.h"
#include "engine/ops.h"

namespace islkd::distill {

std::unique_ptr<Objective> make_sp_objective(const nlohmann::json& options) {
  return make_one_feature_objective({"sp", 2, 3000.0f /* run_cifar_distill.sh -b */, ops::sp_loss}, options);
}

}  // namespace islkd::distill
