// CUDA fused multi-tensor SGD (kernels/cuda/sgd_update.cu) under the emulator against a plain torch.optim.SGD
// reference: several tensors of awkward sizes (1, 31, a chunk boundary, several chunks) in one call, with and
// without momentum buffers, Nesterov, weight decay, dampening and the first step.
#include <iterator>
#include <memory>
#include <vector>

#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::all_close;
using test::DeviceVec;

namespace {

// torch.optim.SGD.step for one tensor, written the textbook way.
void reference_step(std::vector<float>& p, const std::vector<float>& g, std::vector<float>* buf, const SGDParams& o) {
  for (size_t i = 0; i < p.size(); ++i) {
    float d = g[i] + o.weight_decay * p[i];
    if (buf && o.momentum != 0.0f) {
      float& b = (*buf)[i];
      b = o.first_step ? d : o.momentum * b + (1.0f - o.dampening) * d;
      d = o.nesterov ? d + o.momentum * b : b;
    }
    p[i] -= o.lr * d;
  }
}

void check(const SGDParams& o) {
  SCOPED_TRACE(::testing::Message() << "momentum=" << o.momentum << " nesterov=" << o.nesterov << " wd="
                                    << o.weight_decay << " damp=" << o.dampening << " first=" << o.first_step);
  const size_t sizes[] = {1, 31, 8192, 8193, 20000, 33};
  std::vector<std::vector<float>> p, g, b;
  std::vector<std::unique_ptr<DeviceVec<float>>> dp, dg, db;
  std::vector<SGDTensor> tensors;
  uint32_t seed = 71;
  for (size_t k = 0; k < std::size(sizes); ++k) {
    p.push_back(test::random_vector(sizes[k], ++seed));
    g.push_back(test::random_vector(sizes[k], ++seed));
    b.push_back(test::random_vector(sizes[k], ++seed));
    dp.push_back(std::make_unique<DeviceVec<float>>(p.back()));
    dg.push_back(std::make_unique<DeviceVec<float>>(g.back()));
    db.push_back(std::make_unique<DeviceVec<float>>(b.back()));
    const bool has_buf = k != 1;  // one tensor without a momentum buffer takes the plain path
    tensors.push_back(SGDTensor{dp.back()->get(), dg.back()->get(), has_buf ? db.back()->get() : nullptr,
                                static_cast<int64_t>(sizes[k])});
  }
  cuda::sgd_update(tensors, o);
  for (size_t k = 0; k < std::size(sizes); ++k) {
    const bool has_buf = k != 1;
    reference_step(p[k], g[k], has_buf ? &b[k] : nullptr, o);
    EXPECT_TRUE(all_close(dp[k]->host(), p[k], 1e-6f, 1e-5f)) << "tensor " << k;
    EXPECT_TRUE(all_close(db[k]->host(), b[k], 1e-6f, 1e-5f)) << "buffer " << k;
  }
}

SGDParams params(float m, bool nesterov, float wd, float damp, bool first) {
  SGDParams o;
  o.lr = 0.05f, o.momentum = m, o.nesterov = nesterov, o.weight_decay = wd, o.dampening = damp, o.first_step = first;
  return o;
}

}  // namespace

TEST(SgdUpdateCuda, MomentumWithWeightDecayMatchesReference) { check(params(0.9f, false, 5e-4f, 0.0f, false)); }
TEST(SgdUpdateCuda, NesterovMatchesReference) { check(params(0.9f, true, 1e-3f, 0.0f, false)); }
TEST(SgdUpdateCuda, FirstStepSetsBufferToGradient) { check(params(0.9f, true, 5e-4f, 0.3f, true)); }
TEST(SgdUpdateCuda, DampeningMatchesReference) { check(params(0.8f, false, 0.0f, 0.3f, false)); }
TEST(SgdUpdateCuda, PlainSgdLeavesBuffersAlone) { check(params(0.0f, false, 5e-4f, 0.0f, false)); }
TEST(SgdUpdateCuda, EmptyTensorListIsANoOp) { cuda::sgd_update({}, SGDParams{}); }
