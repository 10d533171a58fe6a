// Settings of the loss kernels that both backends take (the fused KD loss, the ISL difficulty scores); the engine's
// objectives and the curriculum hold them as data (engine/distill/kd.h names and validates them).
#pragma once

namespace islkd {

// Knowledge-distillation loss settings (Hinton): total = alpha * T^2 * KL(p_t^T || p_s^T) + (1 - alpha) * CE(s, y).
struct KDLossParams {
  float temperature = 4.0f;
  float alpha = 0.9f;
};

// Per-instance difficulty measures used by the ISL curriculum (lower = easier).
enum class DifficultyMeasure : int { CE = 0, KD = 1, Loss = 2, Confidence = 3 };

}  // namespace islkd
