// Names and config tables for the KD loss settings and the difficulty measures.
#include "engine/distill/kd.h"

#include <cmath>

#include "engine/shortest_decimal.h"
#include "kernels/common/error.h"

namespace islkd::distill {

DifficultyMeasure parse_difficulty_measure(const std::string& name) {
  if (name == "ce") return DifficultyMeasure::CE;
  if (name == "kd") return DifficultyMeasure::KD;
  if (name == "loss") return DifficultyMeasure::Loss;
  if (name == "confidence") return DifficultyMeasure::Confidence;
  ISLKD_FAIL("unknown difficulty measure '", name, "' (expected ce, kd, loss or confidence)");
}

const char* difficulty_measure_name(DifficultyMeasure m) {
  switch (m) {
    case DifficultyMeasure::CE: return "ce";
    case DifficultyMeasure::KD: return "kd";
    case DifficultyMeasure::Loss: return "loss";
    case DifficultyMeasure::Confidence: return "confidence";
  }
  ISLKD_FAIL("unknown difficulty measure ", static_cast<int>(m));
}

nlohmann::json kd_params_to_json(const KDLossParams& p) {
  return {{"temperature", shortest_decimal(p.temperature)}, {"alpha", shortest_decimal(p.alpha)}};
}

KDLossParams kd_params_from_json(const nlohmann::json& j) {
  KDLossParams p;
  ISLKD_CHECK(j.is_object(), "KD settings must be a JSON object, got ", j.dump());
  try {
    p.temperature = j.value("temperature", p.temperature);
    p.alpha = j.value("alpha", p.alpha);
  } catch (const nlohmann::json::exception& e) {
    ISLKD_FAIL("KD settings ", j.dump(), ": ", e.what());
  }
  ISLKD_CHECK(std::isfinite(p.temperature) && p.temperature > 0, "KD temperature must be > 0, got ", p.temperature);
  ISLKD_CHECK(std::isfinite(p.alpha) && p.alpha >= 0 && p.alpha <= 1, "KD alpha must be in [0, 1], got ", p.alpha);
  return p;
}

}  // namespace islkd::distill
