// Minimal tape-based reverse-mode autograd. Ops record a Node when grad mode is on and an input requires
// grad; Tensor::backward() walks the nodes in reverse creation order and runs each node's backward once.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace islkd {

struct Node {
  const char* name = "";
  uint64_t seq = 0;                           // creation order; backward runs in decreasing seq
  std::vector<Tensor> inputs;                 // tensors whose gradients this node produces
  std::vector<std::weak_ptr<TensorImpl>> outputs;
  // Reads the gradients of the outputs (grad_outputs[i] may be undefined = zero) and accumulates into inputs.
  std::function<void(const std::vector<Tensor>& grad_outputs)> backward;
};

bool grad_enabled();

// RAII scope that disables recording (evaluation, teacher forward, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op with these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records a node producing `outputs` from `inputs`; marks outputs requires_grad.
void record(const char* name, std::vector<Tensor> inputs, const std::vector<Tensor>& outputs,
            std::function<void(const std::vector<Tensor>&)> backward);

}  // namespace islkd
