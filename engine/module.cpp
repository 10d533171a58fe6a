// Module tree traversal: dotted names, train/eval, device moves.
#include "engine/module.h"

namespace islkd {

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  t.set_requires_grad(true);
  params_.emplace_back(name, std::make_unique<Tensor>(std::move(t)));
  return *params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, std::make_unique<Tensor>(std::move(t)));
  return *buffers_.back().second;
}

int64_t& Module::register_counter(const std::string& name, int64_t initial) {
  counters_.emplace_back(name, std::make_unique<int64_t>(initial));
  return *counters_.back().second;
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, bool params) const {
  for (auto& [n, t] : params ? params_ : buffers_) out.emplace_back(prefix + n, *t);
  for (auto& [n, c] : children_) c->collect(prefix + n + ".", out, params);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", out, true);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", out, false);
  return out;
}

std::vector<std::pair<std::string, int64_t*>> Module::named_counters() {
  std::vector<std::pair<std::string, int64_t*>> out;
  for (auto& [n, c] : counters_) out.emplace_back(n, c.get());
  for (auto& [cn, child] : children_)
    for (auto& [n, p] : child->named_counters()) out.emplace_back(cn + "." + n, p);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  on_train(on);
  for (auto& [n, c] : children_) c->train(on);
}

void Module::to(Device device) {
  for (auto& [n, t] : params_) {
    if (t->device() == device) continue;
    Tensor moved = t->detach().to(device);
    moved.set_requires_grad(true);
    *t = moved;
  }
  for (auto& [n, t] : buffers_)
    if (t->device() != device) *t = t->to(device);
  for (auto& [n, c] : children_) c->to(device);
}

void Module::zero_grad() {
  for (auto& [n, t] : params_) t->zero_grad();
  for (auto& [n, c] : children_) c->zero_grad();
}

}  // namespace islkd
