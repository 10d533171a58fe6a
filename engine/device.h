// Device choice, made once per run from `--device auto|cpu|cuda` (ops then dispatch on each tensor's device).
#pragma once
#include <iosfwd>
#include <string>

#include "engine/tensor.h"

namespace islkd {

// "cpu" -> CPU; "cuda" -> CUDA, or an islkd::Error saying why there is no usable device; "auto" -> CUDA when a
// driver and a device exist (cuda::device_available), else CPU. Never crashes on a machine without a driver.
// Writes one line saying what was chosen and why to `log` (stderr in the one-argument form).
Device select_device(const std::string& choice, std::ostream& log);
Device select_device(const std::string& choice);

}  // namespace islkd
