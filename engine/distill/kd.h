// Names and config tables for the distillation settings (KD loss parameters, difficulty measures), so apps parse
// them from flags/TOML and runs record them in their logs as data.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "kernels/common/loss_params.h"

namespace islkd::distill {

// "ce" | "kd" | "loss" | "confidence"; anything else is an islkd::Error listing the choices.
DifficultyMeasure parse_difficulty_measure(const std::string& name);
const char* difficulty_measure_name(DifficultyMeasure m);

// {"temperature": T, "alpha": a}; from_json checks T > 0 and 0 <= alpha <= 1 and fills missing keys with defaults.
nlohmann::json kd_params_to_json(const KDLossParams& p);
KDLossParams kd_params_from_json(const nlohmann::json& j);

}  // namespace islkd::distill
