// The model zoo's name -> constructor registry (RepDistiller's model_dict names), so apps take `--model NAME`.
// Adding a model = one file in models/ + one line in registry.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/module.h"

namespace islkd::models {

struct ModelConfig {
  int64_t num_classes = 100;
  int64_t in_channels = 3;  // 1 for Fashion-MNIST / MNIST
  uint64_t seed = 0;        // weight initialisation; the same seed gives the same weights
};

// Builds a model in training mode on the CPU. Unknown name -> islkd::Error listing the valid names.
std::shared_ptr<Module> create_model(const std::string& name, const ModelConfig& config);
std::vector<std::string> model_names();  // sorted, aliases included
bool has_model(const std::string& name);

}  // namespace islkd::models
