// Module tree traversal: dotted names, train/eval, device moves.
#include "engine/module.h"

#include <algorithm>
#include <set>

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

struct Module::FeatureSink {
  const FeatureRequest* request;
  std::map<std::string, Tensor>* out;
};

bool Module::preact_wanted() const { return feature_sink_ && feature_sink_->request->preact; }

bool Module::feature_wanted(const std::string& name) const {
  if (!feature_sink_) return false;
  const auto& names = feature_sink_->request->names;
  return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

void Module::emit_feature(const std::string& name, const Tensor& t) {
  if (feature_wanted(name)) (*feature_sink_->out)[name] = t.to_plain();
}

FeaturesOutput Module::forward_features(const Tensor& x, const FeatureRequest& request) {
  const std::vector<std::string> valid = feature_names();
  for (const auto& n : request.names) {
    if (std::find(valid.begin(), valid.end(), n) != valid.end()) continue;
    std::string list;
    for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
    ISLKD_FAIL("forward_features: this model has no feature '", n, "' (it has: ", list.empty() ? "none" : list, ")");
  }
  FeaturesOutput out;
  FeatureSink sink{&request, &out.features};
  // Restored even when forward throws, so a later plain forward() pays nothing.
  struct Reset {
    FeatureSink*& p;
    ~Reset() { p = nullptr; }
  } reset{feature_sink_};
  feature_sink_ = &sink;
  out.logits = forward(x);
  const size_t expected =
      request.names.empty() ? valid.size() : std::set<std::string>(request.names.begin(), request.names.end()).size();
  ISLKD_CHECK(out.features.size() == expected, "forward_features: the model produced ", out.features.size(),
              " of the ", expected, " requested features (a model's forward must emit every name it lists)");
  return out;
}

void Module::zero_grad() {
  for (auto& [n, t] : params_) t->zero_grad();
  for (auto& [n, c] : children_) c->zero_grad();
}

}  // namespace islkd
