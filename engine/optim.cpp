// SGD: groups the parameters by device and by "buffer exists yet", then calls the fused multi-tensor kernel.
#include "engine/optim.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "engine/autograd.h"
#include "engine/shortest_decimal.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd {

nlohmann::json SGDConfig::to_json() const {
  return {{"type", "sgd"},
          {"lr", shortest_decimal(lr)},
          {"momentum", shortest_decimal(momentum)},
          {"weight_decay", shortest_decimal(weight_decay)},
          {"dampening", shortest_decimal(dampening)},
          {"nesterov", nesterov}};
}

SGD::SGD(std::vector<std::pair<std::string, Tensor>> named_params, const SGDConfig& config) : config_(config) {
  ISLKD_CHECK(config.lr >= 0.0f, "SGD: learning rate must be >= 0, got ", config.lr);
  ISLKD_CHECK(config.momentum >= 0.0f, "SGD: momentum must be >= 0, got ", config.momentum);
  ISLKD_CHECK(config.weight_decay >= 0.0f, "SGD: weight decay must be >= 0, got ", config.weight_decay);
  ISLKD_CHECK(!config.nesterov || (config.momentum > 0.0f && config.dampening == 0.0f),
              "SGD: Nesterov momentum needs momentum > 0 and dampening 0 (got momentum ", config.momentum,
              ", dampening ", config.dampening, ")");
  std::set<std::string> seen;
  for (auto& [name, t] : named_params) {
    ISLKD_CHECK(t.defined(), "SGD: parameter '", name, "' is undefined");
    ISLKD_CHECK(t.dtype() == DType::F32, "SGD: parameter '", name, "' is not float32");
    ISLKD_CHECK(seen.insert(name).second, "SGD: parameter name '", name, "' appears twice");
    params_.push_back({name, t, Tensor()});
  }
}

void SGD::step() {
  NoGradGuard no_grad;
  const bool use_momentum = config_.momentum != 0.0f;
  // Four groups: (cpu, cuda) x (buffer exists, first update of this parameter).
  std::vector<SGDTensor> groups[2][2];
  for (Param& p : params_) {
    Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    ISLKD_CHECK(g.numel() == p.tensor.numel() && g.device() == p.tensor.device(), "SGD: gradient of '", p.name,
                "' has shape ", shape_str(g.shape()), " on ", device_name(g.device()), ", expected ",
                shape_str(p.tensor.shape()), " on ", device_name(p.tensor.device()));
    bool first = false;
    if (use_momentum && !p.momentum.defined()) {
      p.momentum = Tensor::empty(p.tensor.shape(), p.tensor.device());
      first = true;
    }
    Tensor gp = g.to_plain();
    SGDTensor t{p.tensor.data(), gp.data(), use_momentum ? p.momentum.data() : nullptr, p.tensor.numel()};
    groups[p.tensor.is_cuda() ? 1 : 0][first ? 1 : 0].push_back(t);
  }
  for (int dev = 0; dev < 2; ++dev) {
    for (int first = 0; first < 2; ++first) {
      if (groups[dev][first].empty()) continue;
      SGDParams sp;
      sp.lr = config_.lr;
      sp.momentum = config_.momentum;
      sp.weight_decay = config_.weight_decay;
      sp.dampening = config_.dampening;
      sp.nesterov = config_.nesterov;
      sp.first_step = first == 1;
      if (dev == 1)
        cuda::sgd_update(groups[dev][first], sp);
      else
        cpu::sgd_update(groups[dev][first], sp);
    }
  }
  ++step_count_;
}

void SGD::zero_grad() {
  for (Param& p : params_) p.tensor.zero_grad();
}

std::vector<std::pair<std::string, Tensor>> SGD::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Param& p : params_)
    if (p.momentum.defined()) out.emplace_back(kMomentumPrefix + p.name, p.momentum.to(Device::CPU).clone());
  return out;
}

void SGD::load_state(const std::map<std::string, Tensor>& state, int64_t step_count) {
  ISLKD_CHECK(step_count >= 0, "SGD state: negative step count ", step_count);
  std::map<std::string, Param*> by_name;
  for (Param& p : params_) by_name[p.name] = &p;
  const std::string prefix = kMomentumPrefix;
  std::vector<std::pair<Param*, Tensor>> staged;  // validate everything before changing anything
  for (const auto& [key, t] : state) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    std::string name = key.substr(prefix.size());
    auto it = by_name.find(name);
    ISLKD_CHECK(it != by_name.end(), "SGD state: '", key, "' names no parameter of this model");
    ISLKD_CHECK(t.defined() && t.dtype() == DType::F32, "SGD state: '", key, "' is not a float32 tensor");
    // The shape itself, not only the element count: a [64,3,3,3] buffer loaded into a [64,27]-sized slot of
    // another layout would silently scramble the momentum.
    ISLKD_CHECK(t.shape() == it->second->tensor.shape(), "SGD state: '", key, "' has shape ", shape_str(t.shape()),
                ", expected ", shape_str(it->second->tensor.shape()));
    staged.emplace_back(it->second, t);
  }
  for (Param& p : params_) p.momentum = Tensor();
  for (auto& [p, t] : staged) {
    Tensor buf = Tensor::empty(p->tensor.shape(), p->tensor.device());
    buf.copy_from(t.view(p->tensor.shape()));
    p->momentum = buf;
  }
  step_count_ = step_count;
}

}  // namespace islkd
