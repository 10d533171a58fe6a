// Module: a node of the model tree that owns named parameters, buffers (BN running statistics) and children,
// with PyTorch's dotted naming (`layer1.0.bn1.running_mean`), so state dicts match the PyTorch model zoo.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace islkd {

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

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

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out, bool params) const;
  bool training_ = true;
  // std::unique_ptr keeps references returned by register_* stable as more are added.
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> params_;
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<int64_t>>> counters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace islkd
