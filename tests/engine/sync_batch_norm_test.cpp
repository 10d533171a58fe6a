// Synchronised batch norm (ops::batch_norm2d with a BatchNormSync; --sync-bn) without MPI: replicas are threads of
// this process with an in-process all-gather, so R replicas x N/R instances can be checked against one batch of N
// (forward, gradients, running statistics) on plain NCHW and nChw<B>c, by finite differences through the replicas,
// and one replica (the all-gather is the identity) against unsynchronised batch norm on the CPU and emulated CUDA.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "engine/autograd.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "kernels/common/batch_norm_sync.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

// R threads' all-gather: each writes its slot, waits for all, copies every slot out, waits again (so a slot is not
// overwritten by the next call before everyone has read it).
class ThreadWorld {
 public:
  explicit ThreadWorld(int replicas) : replicas_(replicas), slots_(static_cast<size_t>(replicas)) {}
  int replicas() const { return replicas_; }
  void allgather(int rank, const double* mine, int64_t n, double* all) {
    slots_[static_cast<size_t>(rank)].assign(mine, mine + n);
    barrier();
    for (int r = 0; r < replicas_; ++r)
      std::copy(slots_[static_cast<size_t>(r)].begin(), slots_[static_cast<size_t>(r)].end(), all + r * n);
    barrier();
  }

 private:
  void barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t gen = generation_;
    if (++waiting_ == replicas_) {
      waiting_ = 0, ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }
  int replicas_;
  std::vector<std::vector<double>> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  uint64_t generation_ = 0;
};

class ThreadSync : public BatchNormSync {
 public:
  ThreadSync(ThreadWorld& world, int rank) : world_(world), rank_(rank) {}
  int replicas() const override { return world_.replicas(); }
  void allgather(const double* mine, int64_t n, double* all) override { world_.allgather(rank_, mine, n, all); }

 private:
  ThreadWorld& world_;
  int rank_;
};

class OneReplica : public BatchNormSync {
 public:
  int replicas() const override { return 1; }
  void allgather(const double* mine, int64_t n, double* all) override { std::copy(mine, mine + n, all); }
};

struct BnOut {
  std::vector<float> y, dx, dgamma, dbeta, rm, rv;
  double loss = 0.0;
};

// One replica's (or the whole batch's) training-mode BN of x (N x C x HW, plain values), blocked when asked:
// y, the gradients of weighted_sum(y, r), and the running statistics after one update.
BnOut run_bn(const std::vector<float>& x, int64_t N, int64_t C, int64_t H, int64_t W, const std::vector<float>& gamma,
             const std::vector<float>& beta, const std::vector<float>& r, bool blocked, bool relu, bool backward,
             const std::shared_ptr<BatchNormSync>& sync, Device device = Device::CPU) {
  Tensor xt = Tensor::from_vector(x, {N, C, H, W}, device);
  if (blocked)
    xt = xt.to_blocked(std::const_pointer_cast<void>(
        std::static_pointer_cast<const void>(cpu::activation_layout(N, C, H, W))));
  Tensor g = Tensor::from_vector(gamma, {C}, device), b = Tensor::from_vector(beta, {C}, device);
  Tensor rm = Tensor::zeros({C}, device), rv = Tensor::full({C}, 1.0f, device);
  if (backward) xt.set_requires_grad(true), g.set_requires_grad(true), b.set_requires_grad(true);
  BnOut o;
  Tensor y = ops::batch_norm2d(xt, g, b, rm, rv, true, 0.1f, 1e-5f, relu, sync);
  if (relu && !blocked) y = ops::relu(y);
  o.y = y.to_plain().to_vector();
  for (size_t i = 0; i < o.y.size(); ++i) o.loss += double(o.y[i]) * r[i];
  if (backward) {
    test::weighted_sum(y.to_plain(), r).backward();
    o.dx = xt.grad().to_plain().to_vector(), o.dgamma = g.grad().to_vector(), o.dbeta = b.grad().to_vector();
  }
  o.rm = rm.to_vector(), o.rv = rv.to_vector();
  return o;
}

std::vector<float> part(const std::vector<float>& v, int64_t begin, int64_t count) {
  return std::vector<float>(v.begin() + begin, v.begin() + begin + count);
}

// R threads, replica k on instances [k N/R, (k+1) N/R) of x (N divisible by R); r split the same way.
std::vector<BnOut> run_replicas(int R, const std::vector<float>& x, int64_t N, int64_t C, int64_t H, int64_t W,
                                const std::vector<float>& gamma, const std::vector<float>& beta,
                                const std::vector<float>& r, bool blocked, bool relu, bool backward) {
  ThreadWorld world(R);
  std::vector<BnOut> out(static_cast<size_t>(R));
  std::vector<std::thread> threads;
  const int64_t n = N / R, per = n * C * H * W;
  for (int k = 0; k < R; ++k)
    threads.emplace_back([&, k] {
      auto sync = std::make_shared<ThreadSync>(world, k);
      if (!backward) {
        NoGradGuard ng;
        out[static_cast<size_t>(k)] = run_bn(part(x, k * per, per), n, C, H, W, gamma, beta, part(r, k * per, per),
                                             blocked, relu, false, sync);
      } else {
        out[static_cast<size_t>(k)] = run_bn(part(x, k * per, per), n, C, H, W, gamma, beta, part(r, k * per, per),
                                             blocked, relu, true, sync);
      }
    });
  for (auto& t : threads) t.join();
  return out;
}

struct Case {
  int64_t N, C, H, W;
  bool blocked, relu;
};

std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  return std::string(i.param.blocked ? "Blocked" : "Plain") + (i.param.relu ? "Relu" : "") + "_N" +
         std::to_string(i.param.N) + "_C" + std::to_string(i.param.C);
}

class SyncBatchNorm : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Case& c = GetParam();
    if (c.blocked && c.C % cpu::activation_block() != 0) GTEST_SKIP() << "C not a multiple of the block";
    const size_t numel = static_cast<size_t>(c.N * c.C * c.H * c.W);
    // An offset mean (|mean| >> std) is where E[x^2] - E[x]^2 in float32 would lose the variance.
    x = test::random_vector(numel, 1, 9.0f, 11.0f);
    r = test::random_vector(numel, 2);
    gamma = test::random_vector(static_cast<size_t>(c.C), 3, 0.5f, 1.5f);
    beta = test::random_vector(static_cast<size_t>(c.C), 4);
  }
  std::vector<float> x, r, gamma, beta;
};

// With one replica the combination is an identity: the same bits as batch norm without a sync.
TEST_P(SyncBatchNorm, OneReplicaIsBitEqualToUnsynchronisedBatchNorm) {
  const Case& c = GetParam();
  const BnOut ref = run_bn(x, c.N, c.C, c.H, c.W, gamma, beta, r, c.blocked, c.relu, true, nullptr);
  const BnOut one = run_bn(x, c.N, c.C, c.H, c.W, gamma, beta, r, c.blocked, c.relu, true,
                           std::make_shared<OneReplica>());
  EXPECT_EQ(one.y, ref.y);
  EXPECT_EQ(one.dx, ref.dx);
  EXPECT_EQ(one.dgamma, ref.dgamma);
  EXPECT_EQ(one.dbeta, ref.dbeta);
  EXPECT_EQ(one.rm, ref.rm);
  EXPECT_EQ(one.rv, ref.rv);
}

// R replicas of N/R instances each give the whole batch's batch norm: outputs and dx of their slices, the sum of
// their dgamma / dbeta (the gradient all-reduce averages them, for a loss that is the mean of the replicas'), and
// running statistics bit-equal on every replica and equal to the whole batch's (unbiased with the global count).
TEST_P(SyncBatchNorm, ReplicasTogetherGiveTheWholeBatch) {
  const Case& c = GetParam();
  const BnOut whole = run_bn(x, c.N, c.C, c.H, c.W, gamma, beta, r, c.blocked, c.relu, true, nullptr);
  for (int R : {2, 3}) {
    if (c.N % R != 0) continue;
    SCOPED_TRACE("replicas " + std::to_string(R));
    const std::vector<BnOut> reps = run_replicas(R, x, c.N, c.C, c.H, c.W, gamma, beta, r, c.blocked, c.relu, true);
    std::vector<float> y, dx, dgamma(gamma.size(), 0.0f), dbeta(beta.size(), 0.0f);
    for (const BnOut& o : reps) {
      y.insert(y.end(), o.y.begin(), o.y.end());
      dx.insert(dx.end(), o.dx.begin(), o.dx.end());
      for (size_t k = 0; k < dgamma.size(); ++k) dgamma[k] += o.dgamma[k], dbeta[k] += o.dbeta[k];
      EXPECT_EQ(o.rm, reps[0].rm);
      EXPECT_EQ(o.rv, reps[0].rv);
    }
    // Float rounding: the replicas' partial sums are added in another order than the whole batch's.
    EXPECT_TRUE(test::all_close(y, whole.y, 1e-5f, 1e-5f)) << "y";
    EXPECT_TRUE(test::all_close(dx, whole.dx, 1e-5f, 1e-4f)) << "dx";
    EXPECT_TRUE(test::all_close(dgamma, whole.dgamma, 1e-4f, 1e-5f)) << "dgamma";
    EXPECT_TRUE(test::all_close(dbeta, whole.dbeta, 1e-4f, 1e-5f)) << "dbeta";
    EXPECT_TRUE(test::all_close(reps[0].rm, whole.rm, 1e-6f, 1e-6f)) << "running_mean";
    EXPECT_TRUE(test::all_close(reps[0].rv, whole.rv, 1e-6f, 1e-5f)) << "running_var";
    std::printf("  %d replicas vs one batch: y %.2e, dx %.2e, dgamma %.2e, running_var %.2e max relative\n", R,
                test::max_relative_error(y, whole.y), test::max_relative_error(dx, whole.dx),
                test::max_relative_error(dgamma, whole.dgamma), test::max_relative_error(reps[0].rv, whole.rv));
  }
}

// Central differences of the replicas' total loss (every replica's forward, so each perturbation moves the shared
// statistics) against the synchronised backward's dx and summed dgamma.
TEST_P(SyncBatchNorm, GradientsThroughTwoReplicasMatchFiniteDifferences) {
  const Case& c = GetParam();
  if (c.N % 2 != 0 || c.relu) GTEST_SKIP() << "the ReLU's kink is not differentiable";
  // Centred inputs: float32 differences of an offset input would cancel.
  std::vector<float> xc = test::random_vector(x.size(), 5, -1.0f, 1.0f);
  const std::vector<BnOut> reps = run_replicas(2, xc, c.N, c.C, c.H, c.W, gamma, beta, r, c.blocked, c.relu, true);
  std::vector<float> dx;
  for (const BnOut& o : reps) dx.insert(dx.end(), o.dx.begin(), o.dx.end());
  auto total = [&](const std::vector<float>& xv, const std::vector<float>& g) {
    double s = 0.0;
    for (const BnOut& o : run_replicas(2, xv, c.N, c.C, c.H, c.W, g, beta, r, c.blocked, c.relu, false)) s += o.loss;
    return s;
  };
  const float eps = 1e-2f;
  int bad = 0;
  for (size_t i = 0; i < xc.size(); i += xc.size() / 24 + 1) {
    std::vector<float> p = xc, m = xc;
    p[i] += eps, m[i] -= eps;
    const double numeric = (total(p, gamma) - total(m, gamma)) / (2.0 * eps);
    if (std::fabs(dx[i] - numeric) > 2e-3 + 2e-2 * std::fabs(numeric)) {
      ++bad;
      ADD_FAILURE() << "dx[" << i << "] " << dx[i] << " vs finite differences " << numeric;
    }
  }
  for (size_t k = 0; k < gamma.size(); ++k) {
    std::vector<float> p = gamma, m = gamma;
    p[k] += eps, m[k] -= eps;
    const double numeric = (total(xc, p) - total(xc, m)) / (2.0 * eps);
    const double analytic = double(reps[0].dgamma[k]) + reps[1].dgamma[k];
    EXPECT_NEAR(analytic, numeric, 2e-3 + 2e-2 * std::fabs(numeric)) << "dgamma[" << k << "]";
  }
  EXPECT_EQ(bad, 0);
}

INSTANTIATE_TEST_SUITE_P(Layouts, SyncBatchNorm,
                         ::testing::Values(Case{6, 3, 4, 5, false, false}, Case{4, 5, 1, 3, false, false},
                                           Case{6, 16, 5, 5, true, false}, Case{4, 32, 3, 3, true, true}),
                         case_name);

// The emulated CUDA device: one replica against unsynchronised batch norm on the device (the partials go through
// the host and back as the normalisation's table), and two replicas on the device against the whole batch.
TEST(SyncBatchNormCuda, OneReplicaAndTwoReplicasMatchTheWholeBatch) {
  const int64_t N = 4, C = 3, H = 4, W = 5;
  const size_t numel = static_cast<size_t>(N * C * H * W);
  const std::vector<float> x = test::random_vector(numel, 1, 9.0f, 11.0f), r = test::random_vector(numel, 2),
                           gamma = test::random_vector(3, 3, 0.5f, 1.5f), beta = test::random_vector(3, 4);
  const BnOut ref = run_bn(x, N, C, H, W, gamma, beta, r, false, false, true, nullptr, Device::CUDA);
  const BnOut one = run_bn(x, N, C, H, W, gamma, beta, r, false, false, true, std::make_shared<OneReplica>(),
                           Device::CUDA);
  const BnOut cpu = run_bn(x, N, C, H, W, gamma, beta, r, false, false, true, nullptr);
  for (const auto& [name, a, b] : std::vector<std::tuple<const char*, std::vector<float>, std::vector<float>>>{
           {"y", one.y, ref.y}, {"dx", one.dx, ref.dx}, {"dgamma", one.dgamma, ref.dgamma},
           {"dbeta", one.dbeta, ref.dbeta}, {"running_mean", one.rm, ref.rm}, {"running_var", one.rv, ref.rv}}) {
    EXPECT_EQ(a, b) << name << ": one replica on cuda, bit-equal to no sync";
  }
  EXPECT_TRUE(test::all_close(one.y, cpu.y, 1e-5f, 1e-4f));
  EXPECT_TRUE(test::all_close(one.dx, cpu.dx, 1e-5f, 1e-4f));

  // Two replicas on the device, one after the other's halves in two threads (the emulator serves both).
  ThreadWorld world(2);
  std::vector<BnOut> reps(2);
  const int64_t per = N / 2 * C * H * W;
  std::vector<std::thread> threads;
  for (int k = 0; k < 2; ++k)
    threads.emplace_back([&, k] {
      reps[static_cast<size_t>(k)] = run_bn(part(x, k * per, per), N / 2, C, H, W, gamma, beta, part(r, k * per, per),
                                            false, false, true, std::make_shared<ThreadSync>(world, k), Device::CUDA);
    });
  for (auto& t : threads) t.join();
  std::vector<float> y = reps[0].y, dx = reps[0].dx;
  y.insert(y.end(), reps[1].y.begin(), reps[1].y.end());
  dx.insert(dx.end(), reps[1].dx.begin(), reps[1].dx.end());
  EXPECT_TRUE(test::all_close(y, ref.y, 1e-5f, 1e-5f)) << "y";
  EXPECT_TRUE(test::all_close(dx, ref.dx, 1e-5f, 1e-4f)) << "dx";
  EXPECT_EQ(reps[0].rv, reps[1].rv);
  EXPECT_TRUE(test::all_close(reps[0].rv, ref.rv, 1e-6f, 1e-5f)) << "running_var";
}

// nn::set_batch_norm_sync reaches every BatchNorm2d of a model, and eval mode ignores it (running statistics).
TEST(SyncBatchNormModel, SetOnEveryLayerOfAModel) {
  nn::Sequential m;
  m.add(std::make_shared<nn::BatchNorm2d>(3));
  auto inner = m.add(std::make_shared<nn::Sequential>());
  inner->add(std::make_shared<nn::BatchNorm2d>(3));
  auto sync = std::make_shared<OneReplica>();
  EXPECT_EQ(nn::set_batch_norm_sync(m, sync), 2);
  EXPECT_EQ(dynamic_cast<nn::BatchNorm2d&>((*inner)[0]).sync, sync);
  EXPECT_EQ(nn::set_batch_norm_sync(m, nullptr), 2);
  EXPECT_EQ(dynamic_cast<nn::BatchNorm2d&>(m[0]).sync, nullptr);
}

}  // namespace
