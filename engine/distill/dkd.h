// DKD's loss-weight warm-up (mdistiller's distillers/DKD.py): the decoupled terms are scaled by
// min(epoch / warmup, 1) so the student first follows the labels; ops::DKDLossParams::warmup takes the factor.
#pragma once
#include <cstdint>

namespace islkd::distill {

// mdistiller's default warm-up length (configs/cifar100/dkd: DKD.WARMUP 20).
constexpr int64_t kDKDWarmupEpochs = 20;

// min(epoch / warmup_epochs, 1) for a 1-based epoch, as mdistiller's trainer counts them (epoch 1 gives 1/20);
// warmup_epochs <= 0 means no warm-up (1). A negative epoch is an islkd::Error.
float dkd_warmup_factor(int64_t epoch, int64_t warmup_epochs = kDKDWarmupEpochs);

}  // namespace islkd::distill
