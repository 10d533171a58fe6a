// The tape: nodes are linked from their outputs (TensorImpl::grad_fn) to their inputs; backward() collects
// every node reachable from the root and runs them in reverse creation order, so each runs exactly once
// after all of its consumers.
#include "engine/autograd.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "kernels/cpu/cpu_kernels.h"

namespace islkd {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<uint64_t> g_seq{0};
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* name, std::vector<Tensor> inputs, const std::vector<Tensor>& outputs,
            std::function<void(const std::vector<Tensor>&)> backward) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->seq = g_seq.fetch_add(1);
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  for (const Tensor& o : outputs) {
    node->outputs.push_back(o.impl_ptr());
    o.impl()->requires_grad = true;
    o.impl()->grad_fn = node;
  }
}

void Tensor::backward() const { backward(nullptr); }

void Tensor::backward(const std::function<void(const Tensor& leaf)>& on_leaf_ready) const {
  ISLKD_CHECK(defined() && numel() == 1, "backward(): the root must be a single value, got shape ",
              defined() ? shape_str(shape()) : "undefined");
  ISLKD_CHECK(requires_grad(), "backward(): the root does not require grad (computed under no_grad?)");
  // Seed d root = 1.
  set_grad(Tensor::full(shape(), 1.0f, device()));
  if (!impl()->grad_fn) return;

  std::vector<std::shared_ptr<Node>> nodes;
  std::unordered_set<Node*> seen;
  std::vector<std::shared_ptr<Node>> stack{impl()->grad_fn};
  seen.insert(impl()->grad_fn.get());
  while (!stack.empty()) {
    auto n = stack.back();
    stack.pop_back();
    nodes.push_back(n);
    for (const Tensor& in : n->inputs) {
      if (!in.defined()) continue;
      auto& fn = in.impl()->grad_fn;
      if (fn && seen.insert(fn.get()).second) stack.push_back(fn);
    }
  }
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) { return a->seq > b->seq; });

  // ready_after[k]: the leaves whose last accumulating node is nodes[k] (each leaf once, in input order).
  std::vector<std::vector<Tensor>> ready_after;
  if (on_leaf_ready) {
    std::unordered_map<TensorImpl*, size_t> last;
    for (size_t k = 0; k < nodes.size(); ++k)
      for (const Tensor& in : nodes[k]->inputs)
        if (in.defined() && !in.impl()->grad_fn && in.impl()->requires_grad) last[in.impl()] = k;
    ready_after.resize(nodes.size());
    for (size_t k = 0; k < nodes.size(); ++k)
      for (const Tensor& in : nodes[k]->inputs) {
        if (!in.defined()) continue;
        auto it = last.find(in.impl());
        if (it != last.end() && it->second == k) {
          ready_after[k].push_back(in);
          last.erase(it);  // a leaf given twice to one node is reported once
        }
      }
  }

  for (size_t k = 0; k < nodes.size(); ++k) {
    auto& n = nodes[k];
    std::vector<Tensor> grads;
    bool any = false;
    for (auto& w : n->outputs) {
      auto o = w.lock();
      if (o && o->grad) {
        grads.emplace_back(o->grad);
        any = true;
      } else {
        grads.emplace_back();
      }
    }
    if (any) n->backward(grads);
    // Intermediate gradients are not needed after their node ran: free them and cut the graph.
    for (auto& w : n->outputs) {
      if (auto o = w.lock()) {
        if (o.get() != impl()) o->grad.reset();
        o->grad_fn.reset();
      }
    }
    n->backward = nullptr;
    if (on_leaf_ready)
      for (const Tensor& leaf : ready_after[k]) on_leaf_ready(leaf);
  }
  // Inputs are released only now: an intermediate output must stay alive until its producer has run.
  for (auto& n : nodes) {
    n->inputs.clear();
    n->backward = nullptr;
  }
}

}  // namespace islkd
