// A full training step of a small ResNet on device cuda under the emulator (the .cu kernels, the backend's host
// code and the cuDNN/cuBLAS shim) against the same step on the CPU: logits, loss, gradients, SGD-updated
// parameters and BN running statistics agree to tolerance over two steps (the second one uses momentum buffers).
#include <map>
#include <sstream>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "models/registry.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;

namespace {

constexpr float kLr = 0.1f, kMomentum = 0.9f, kWeightDecay = 5e-4f;

// The CPU side's SGD, written out (torch.optim.SGD semantics) so the check does not depend on the kernel
// under test: d = g + wd*p; buf = first ? d : m*buf + d; p -= lr*buf.
void sgd_cpu(std::vector<std::pair<std::string, Tensor>>& params, std::map<std::string, std::vector<float>>& bufs,
             bool first) {
  for (auto& [name, p] : params) {
    std::vector<float> pv = p.to_vector(), g = p.grad().to_vector();
    std::vector<float>& buf = bufs[name];
    buf.resize(pv.size());
    for (size_t i = 0; i < pv.size(); ++i) {
      const float d = g[i] + kWeightDecay * pv[i];
      buf[i] = first ? d : kMomentum * buf[i] + d;
      pv[i] -= kLr * buf[i];
    }
    p.copy_from(Tensor::from_vector(pv, p.shape()));
  }
}

// The CUDA side: the fused multi-tensor kernel, one call for all parameters.
void sgd_cuda(std::vector<std::pair<std::string, Tensor>>& params, std::map<std::string, Tensor>& bufs, bool first) {
  std::vector<SGDTensor> ts;
  for (auto& [name, p] : params) {
    Tensor& b = bufs[name];
    if (!b.defined()) b = Tensor::zeros(p.shape(), Device::CUDA);
    ts.push_back(SGDTensor{p.data(), p.grad().data(), b.data(), p.numel()});
  }
  SGDParams sp;
  sp.lr = kLr, sp.momentum = kMomentum, sp.weight_decay = kWeightDecay, sp.dampening = 0.0f, sp.nesterov = false;
  sp.first_step = first;
  cuda::sgd_update(ts, sp);
}

::testing::AssertionResult named_close(const std::vector<std::pair<std::string, Tensor>>& a,
                                       const std::vector<std::pair<std::string, Tensor>>& b, float atol, float rtol,
                                       bool grads) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "different tensor counts";
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor ta = grads ? a[i].second.grad() : a[i].second, tb = grads ? b[i].second.grad() : b[i].second;
    if (!ta.defined() || !tb.defined()) return ::testing::AssertionFailure() << a[i].first << ": undefined";
    auto r = test::all_close(ta.to_vector(), tb.to_vector(), atol, rtol);
    if (!r) return ::testing::AssertionFailure() << a[i].first << (grads ? " (grad)" : "") << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(CudaTrainStep, Resnet8StepOnEmulatedCudaMatchesCpu) {
  test::enable_emulated_cuda();
  // One OpenMP thread: idle OpenMP workers spin-wait and take the cores from the emulator's block threads
  // (5x slower on a loaded 2-core machine); the step is small, so the CPU side loses nothing.
  cpu::set_num_threads(1);
  std::ostringstream log;
  ASSERT_EQ(select_device("cuda", log), Device::CUDA) << log.str();

  models::ModelConfig cfg;
  cfg.num_classes = 10, cfg.in_channels = 1, cfg.seed = 7;  // Fashion-MNIST-shaped input keeps the emulated step fast
  auto cpu_model = models::create_model("resnet8", cfg);
  auto gpu_model = models::create_model("resnet8", cfg);
  gpu_model->to(Device::CUDA);
  auto cpu_params = cpu_model->named_parameters(), gpu_params = gpu_model->named_parameters();
  ASSERT_TRUE(named_close(gpu_params, cpu_params, 0, 0, false)) << "same seed, same initial weights";

  std::map<std::string, std::vector<float>> cpu_bufs;
  std::map<std::string, Tensor> gpu_bufs;
  for (int step = 0; step < 2; ++step) {
    const Tensor x = test::random_tensor({4, 1, 28, 28}, 100 + step);
    const std::vector<int32_t> y = {1, 5, 3, 9};

    cpu_model->zero_grad();
    const Tensor cpu_logits = (*cpu_model)(x);
    const Tensor cpu_loss = ops::cross_entropy(cpu_logits, Tensor::from_labels(y));
    cpu_loss.backward();

    gpu_model->zero_grad();
    const Tensor gpu_logits = (*gpu_model)(x.to(Device::CUDA));
    ASSERT_TRUE(gpu_logits.is_cuda());
    const Tensor gpu_loss = ops::cross_entropy(gpu_logits, Tensor::from_labels(y, Device::CUDA));
    gpu_loss.backward();

    EXPECT_TRUE(test::all_close(gpu_logits, cpu_logits.to_vector(), 1e-4f, 1e-3f)) << "logits, step " << step;
    EXPECT_NEAR(gpu_loss.item(), cpu_loss.item(), 1e-4f) << "loss, step " << step;
    EXPECT_TRUE(named_close(gpu_params, cpu_params, 1e-4f, 2e-3f, true)) << "gradients, step " << step;

    {
      NoGradGuard ng;
      sgd_cpu(cpu_params, cpu_bufs, step == 0);
      sgd_cuda(gpu_params, gpu_bufs, step == 0);
    }
    EXPECT_TRUE(named_close(gpu_params, cpu_params, 1e-5f, 1e-4f, false)) << "updated parameters, step " << step;
    EXPECT_TRUE(named_close(gpu_model->named_buffers(), cpu_model->named_buffers(), 1e-5f, 1e-4f, false))
        << "BN running statistics, step " << step;
  }
  for (const auto& [name, p] : gpu_params) EXPECT_TRUE(p.is_cuda()) << name;
}
