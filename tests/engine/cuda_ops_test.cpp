// Every op of engine/ops.h through the engine on device cuda (emulated) against the same op on the CPU: outputs,
// input gradients through the autograd tape, and side outputs (BN running statistics, KD row losses). Checks the
// dispatch end to end (tensors, int32 labels and statistics on the device), not the kernels' corner cases, which
// tests/kernels/cuda_*_test.cpp cover.
#include <functional>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on CPU inputs and on CUDA copies of them, compares the outputs and (for inputs that require grad) the
// gradients of weighted_sum(f(inputs), r).
void expect_same_on_cuda(const char* op, const Fn& f, const std::vector<Tensor>& cpu_in, float atol = 1e-5f,
                         float rtol = 1e-4f) {
  SCOPED_TRACE(op);
  std::vector<Tensor> gpu_in;
  for (const Tensor& t : cpu_in) {
    Tensor g = t.to(Device::CUDA).detach();
    if (t.requires_grad()) g.set_requires_grad(true);
    gpu_in.push_back(g);
  }
  const Tensor yc = f(cpu_in), yg = f(gpu_in);
  ASSERT_TRUE(yg.is_cuda());
  ASSERT_EQ(yg.shape(), yc.shape());
  EXPECT_TRUE(test::all_close(yg, yc.to_vector(), atol, rtol)) << "output";
  bool grads = false;
  for (const Tensor& t : cpu_in) grads |= t.requires_grad();
  if (!grads) return;
  const std::vector<float> r = test::random_vector(static_cast<size_t>(yc.numel()), 99);
  test::weighted_sum(yc, r).backward();
  test::weighted_sum(yg, r).backward();
  for (size_t i = 0; i < cpu_in.size(); ++i) {
    if (!cpu_in[i].requires_grad()) continue;
    ASSERT_TRUE(gpu_in[i].grad().defined()) << "input " << i << " got no gradient on cuda";
    ASSERT_TRUE(gpu_in[i].grad().is_cuda());
    EXPECT_TRUE(test::all_close(gpu_in[i].grad(), cpu_in[i].grad().to_vector(), atol, rtol)) << "grad of input " << i;
  }
}

Tensor param(const Shape& s, uint32_t seed) { return test::random_tensor(s, seed).set_requires_grad(true); }

}  // namespace

TEST(CudaOps, ElementwiseAndShapeOpsMatchCpu) {
  expect_same_on_cuda("relu", [](auto& in) { return ops::relu(in[0]); }, {param({2, 3, 5, 5}, 1)});
  expect_same_on_cuda("add", [](auto& in) { return ops::add(in[0], in[1]); }, {param({31}, 2), param({31}, 3)});
  expect_same_on_cuda("scale", [](auto& in) { return ops::scale(in[0], -1.5f); }, {param({33}, 4)});
  expect_same_on_cuda("flatten", [](auto& in) { return ops::flatten(ops::relu(in[0])); }, {param({2, 3, 4, 4}, 5)});
  expect_same_on_cuda("concat", [](auto& in) { return ops::concat({in[0], in[1]}); },
                      {param({2, 3, 4, 4}, 6), param({2, 5, 4, 4}, 7)});
  expect_same_on_cuda("split", [](auto& in) { return ops::split(in[0], {2, 3})[1]; }, {param({2, 5, 3, 3}, 8)});
  expect_same_on_cuda("channel_shuffle", [](auto& in) { return ops::channel_shuffle(in[0], 3); },
                      {param({2, 6, 3, 3}, 9)});
}

TEST(CudaOps, LayersMatchCpu) {
  expect_same_on_cuda("conv2d stride 2 groups 2 bias",
                      [](auto& in) { return ops::conv2d(in[0], in[1], in[2], 2, 1, 2); },
                      {param({2, 4, 9, 9}, 10), param({6, 2, 3, 3}, 11), param({6}, 12)});
  expect_same_on_cuda("max_pool2d", [](auto& in) { return ops::max_pool2d(in[0], 3, 2, 1); },
                      {param({2, 3, 9, 9}, 13)});
  expect_same_on_cuda("avg_pool2d", [](auto& in) { return ops::avg_pool2d(in[0], 3, 2, 1); },
                      {param({2, 3, 9, 9}, 14)});
  expect_same_on_cuda("global_avg_pool", [](auto& in) { return ops::global_avg_pool(in[0]); },
                      {param({2, 5, 7, 7}, 15)});
  expect_same_on_cuda("linear", [](auto& in) { return ops::linear(in[0], in[1], in[2]); },
                      {param({4, 33}, 16), param({10, 33}, 17), param({10}, 18)});
}

TEST(CudaOps, BatchNormTrainingUpdatesRunningStatisticsOnTheDevice) {
  const Tensor x = param({3, 4, 5, 5}, 20), gamma = param({4}, 21), beta = param({4}, 22);
  Tensor rm_c = Tensor::zeros({4}), rv_c = Tensor::full({4}, 1.0f);
  Tensor rm_g = Tensor::zeros({4}, Device::CUDA), rv_g = Tensor::full({4}, 1.0f, Device::CUDA);
  expect_same_on_cuda("batch_norm2d train",
                      [&](auto& in) {
                        const bool cuda = in[0].is_cuda();
                        return ops::batch_norm2d(in[0], in[1], in[2], cuda ? rm_g : rm_c, cuda ? rv_g : rv_c, true);
                      },
                      {x, gamma, beta}, 1e-4f, 1e-3f);
  EXPECT_TRUE(rm_g.is_cuda() && rv_g.is_cuda());
  EXPECT_TRUE(test::all_close(rm_g, rm_c.to_vector(), 1e-6f, 1e-5f));
  EXPECT_TRUE(test::all_close(rv_g, rv_c.to_vector(), 1e-6f, 1e-5f));
  expect_same_on_cuda("batch_norm2d eval",
                      [&](auto& in) {
                        const bool cuda = in[0].is_cuda();
                        return ops::batch_norm2d(in[0], in[1], in[2], cuda ? rm_g : rm_c, cuda ? rv_g : rv_c, false);
                      },
                      {param({2, 4, 3, 3}, 23), param({4}, 24), param({4}, 25)}, 1e-4f, 1e-3f);
}

TEST(CudaOps, LossesWithInt32LabelsOnTheDeviceMatchCpu) {
  const std::vector<int32_t> y = {0, 4, 2, 9, 4};
  const Tensor labels = Tensor::from_labels(y);
  expect_same_on_cuda("cross_entropy", [](auto& in) { return ops::cross_entropy(in[0], in[1]); },
                      {param({5, 10}, 30), labels});
  expect_same_on_cuda("softmax", [](auto& in) { return ops::softmax(in[0]); }, {test::random_tensor({5, 10}, 31)});
  KDLossParams kp;
  expect_same_on_cuda("kd_loss", [kp](auto& in) { return ops::kd_loss(in[0], in[1], in[2], kp).loss; },
                      {param({5, 10}, 32), test::random_tensor({5, 10}, 33), labels});
  expect_same_on_cuda("kd_loss row_loss", [kp](auto& in) { return ops::kd_loss(in[0], in[1], in[2], kp).row_loss; },
                      {test::random_tensor({5, 10}, 34), test::random_tensor({5, 10}, 35), labels});
  expect_same_on_cuda("difficulty_scores",
                      [kp](auto& in) { return ops::difficulty_scores(in[0], in[1], in[2], DifficultyMeasure::Loss, kp); },
                      {test::random_tensor({5, 10}, 36), test::random_tensor({5, 10}, 37), labels});
}

TEST(CudaOps, RadixSortOfDeviceKeysMatchesCpu) {
  const Tensor keys = test::random_tensor({1000}, 40);
  std::vector<uint32_t> values(1000);
  for (uint32_t i = 0; i < 1000; ++i) values[i] = i;
  const auto [kc, vc] = ops::radix_sort_pairs(keys, values);
  const auto [kg, vg] = ops::radix_sort_pairs(keys.to(Device::CUDA), values);
  EXPECT_TRUE(kg.is_cuda());
  EXPECT_TRUE(test::all_close(kg, kc.to_vector(), 0, 0));
  EXPECT_EQ(vg, vc);
}
