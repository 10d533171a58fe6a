// Module: a node of the model tree that owns named parameters, buffers (BN running statistics) and children,
// with PyTorch's dotted naming (`layer1.0.bn1.running_mean`), so state dicts match the PyTorch model zoo.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace islkd {

// Which intermediate features forward_features returns (RepDistiller's `feat` list: `feat0` is the stem's output,
// `feat1`.. the output of each stage, the last one the pooled vector the classifier reads).
struct FeatureRequest {
  std::vector<std::string> names;  // empty: every feature the model has (Module::feature_names)
  bool preact = false;             // RepDistiller's `preact`: stage outputs taken before their final ReLU
};

struct FeaturesOutput {
  Tensor logits;
  std::map<std::string, Tensor> features;  // plain layout; on the tape like the logits when autograd records
};

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // The logits and the requested named features of one forward pass (no second forward: the model's forward
  // hands each feature to the request as it passes it). An unknown name is an islkd::Error listing the model's
  // names. Works in any mode: training with autograd (a loss on a feature sends gradients into the model), eval,
  // and the folded inference teacher. forward() alone does none of this (one null check per stage).
  FeaturesOutput forward_features(const Tensor& x, const FeatureRequest& request = {});
  // The features forward_features can return, in RepDistiller's list order; empty for modules without any.
  virtual std::vector<std::string> feature_names() const { return {}; }

  // Recursive, in registration order, with dotted names.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;  // float buffers (running_mean/var)
  // int64 counters (BN's num_batches_tracked): stored in checkpoints as int64 like PyTorch.
  std::vector<std::pair<std::string, int64_t*>> named_counters();
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves every parameter and buffer to `device` (in place: the Module's tensors are replaced).
  void to(Device device);
  void zero_grad();
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t);
  Tensor& register_buffer(const std::string& name, Tensor t);
  int64_t& register_counter(const std::string& name, int64_t initial = 0);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }
  virtual void on_train(bool) {}
  // For a model's forward: true only inside forward_features, and then whether the request wants a name or the
  // pre-activation variants. emit_feature keeps t when it was asked for.
  bool features_wanted() const { return feature_sink_ != nullptr; }
  bool preact_wanted() const;
  bool feature_wanted(const std::string& name) const;
  void emit_feature(const std::string& name, const Tensor& t);

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, bool params) const;
  bool training_ = true;
  struct FeatureSink;
  FeatureSink* feature_sink_ = nullptr;  // set by forward_features for the duration of one forward
  // std::unique_ptr keeps references returned by register_* stable as more are added.
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> params_;
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<int64_t>>> counters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace islkd
