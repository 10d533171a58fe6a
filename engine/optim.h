// SGD with momentum, Nesterov and weight decay (torch.optim.SGD semantics) over a model's named parameters,
// with its state (momentum buffers + step count) exported as named tensors so checkpoints can carry it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"

namespace islkd {

struct SGDConfig {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 5e-4f;
  float dampening = 0.0f;
  bool nesterov = false;
  nlohmann::json to_json() const;  // the settings, for the run log
};

// Name prefix of the momentum buffers in a state dict: `optimizer.momentum.<parameter name>`.
inline constexpr const char* kMomentumPrefix = "optimizer.momentum.";

class SGD {
 public:
  // The tensors are held by handle: construct the optimizer after moving the model to its device
  // (Module::to replaces the parameter tensors).
  SGD(std::vector<std::pair<std::string, Tensor>> named_params, const SGDConfig& config);

  // One update of every parameter that has a gradient (parameters without one are skipped and keep their
  // momentum buffer untouched, as in PyTorch). Runs without autograd recording.
  void step();
  void zero_grad();  // drops every parameter's gradient

  void set_lr(float lr) { config_.lr = lr; }
  float lr() const { return config_.lr; }
  const SGDConfig& config() const { return config_; }
  int64_t step_count() const { return step_count_; }

  // Momentum buffers that exist (a parameter gets one at its first update), named kMomentumPrefix + name,
  // as CPU tensors (copied from the device when needed).
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Restores buffers and the step count. Every entry of `state` whose name starts with kMomentumPrefix must
  // name a parameter of this optimizer with the same shape; other names are ignored (they belong to the model
  // or other components). Parameters without an entry get a fresh buffer at their next update.
  void load_state(const std::map<std::string, Tensor>& state, int64_t step_count);

 private:
  struct Param {
    std::string name;
    Tensor tensor;
    Tensor momentum;  // undefined until the first update with momentum != 0
  };
  std::vector<Param> params_;
  SGDConfig config_;
  int64_t step_count_ = 0;
};

}  // namespace islkd
