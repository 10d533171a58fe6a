// Data-parallel plumbing that runs without mpirun: the gradient buckets' layout and their 1-rank behaviour, and the
// communicator chosen from the environment (one process, or one clear error when libmpi is missing under mpirun).
#include <gtest/gtest.h>

#include <cstdlib>
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/train/dist.h"
#include "engine/train/grad_buckets.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

std::vector<std::pair<std::string, Tensor>> params_of_sizes(const std::vector<int64_t>& sizes) {
  std::vector<std::pair<std::string, Tensor>> p;
  for (size_t i = 0; i < sizes.size(); ++i)
    p.emplace_back("p" + std::to_string(i), Tensor::zeros({sizes[i]}).set_requires_grad(true));
  return p;
}

// Restores an environment variable at the end of a scope.
struct EnvGuard {
  std::string name;
  std::string old;
  bool had;
  EnvGuard(const char* n, const char* value) : name(n) {
    const char* o = std::getenv(n);
    had = o != nullptr;
    if (had) old = o;
    if (value)
      setenv(n, value, 1);
    else
      unsetenv(n);
  }
  ~EnvGuard() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

// Two ranks as rank 0 sees them when the other rank's gradients equal its own: every sum doubles. The non-blocking
// sums complete only at wait_all() (or at the next blocking collective, as MPI's wait covers every started request),
// so a test sees how many had started when.
class TwinRanks final : public dist::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 2; }
  std::string backend() const override { return "twin"; }
  void allreduce_mean(float*, int64_t) override { wait_all(); }  // the mean of two equal vectors
  void allreduce_sum(double* d, int64_t n) override {
    wait_all();
    for (int64_t i = 0; i < n; ++i) d[i] *= 2;
  }
  void allgather(const void*, int64_t, void*) override { FAIL() << "not used"; }
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
  void start_allreduce_sum(float* data, int64_t n) override {
    pending.push_back({data, n});
    ++started;
  }
  void progress() override { ++progress_calls; }
  void wait_all() override {
    for (auto [d, n] : pending)
      for (int64_t i = 0; i < n; ++i) d[i] *= 2;
    pending.clear();
  }
  [[noreturn]] void abort(int code) override { std::exit(code); }
  std::vector<std::pair<float*, int64_t>> pending;
  int started = 0, progress_calls = 0;
};

// loss = sum(linear(relu(linear(x, w0, b0)), w1, b1) + linear(x, w2, .)) with w0 used again at the end: a small graph
// whose leaves become final at different points of the backward.
Tensor small_loss(const std::vector<std::pair<std::string, Tensor>>& p, const Tensor& x) {
  const Tensor h = ops::relu(ops::linear(x, p[0].second, p[1].second));  // 4 x 6
  const Tensor y = ops::linear(h, p[2].second, p[3].second);              // 4 x 3
  const Tensor z = ops::linear(x, p[4].second, Tensor());                 // 4 x 3
  const Tensor y2 = ops::add(y, z);
  return ops::cross_entropy(y2, Tensor::from_labels({0, 2, 1, 2}));
}

std::vector<std::pair<std::string, Tensor>> small_params() {
  std::vector<std::pair<std::string, Tensor>> p;
  uint64_t s = 1;
  auto rnd = [&s](Shape shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      x = static_cast<float>(static_cast<int64_t>(s >> 40) % 2001 - 1000) / 1000.0f;
    }
    return Tensor::from_vector(v, shape).set_requires_grad(true);
  };
  p.emplace_back("w0", rnd({6, 5}));
  p.emplace_back("b0", rnd({6}));
  p.emplace_back("w1", rnd({3, 6}));
  p.emplace_back("b1", rnd({3}));
  p.emplace_back("w2", rnd({3, 5}));
  return p;
}

Tensor small_input() {
  std::vector<float> v(20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
  return Tensor::from_vector(v, {4, 5});
}

}  // namespace

// The backward's leaf hook: every parameter reached is reported exactly once, and its gradient at that moment is the
// one it has when the whole backward is done (no later node accumulates into it); the last layer's before the first.
TEST(AutogradLeafHook, ReportsEachParameterOnceWhenItsGradientIsFinal) {
  auto p = small_params();
  const Tensor x = small_input();
  small_loss(p, x).backward();
  std::map<std::string, std::vector<float>> want;
  for (auto& [name, t] : p) {
    want[name] = t.grad().to_vector();
    t.zero_grad();
  }
  std::vector<std::string> order;
  std::map<std::string, std::vector<float>> at_report;
  small_loss(p, x).backward([&](const Tensor& leaf) {
    for (auto& [name, t] : p)
      if (t.impl() == leaf.impl()) {
        order.push_back(name);
        at_report[name] = leaf.grad().to_vector();
      }
  });
  ASSERT_EQ(order.size(), p.size()) << "each parameter once";
  for (auto& [name, t] : p) {
    EXPECT_EQ(at_report[name], want[name]) << name << ": reported before its gradient was final";
    EXPECT_EQ(t.grad().to_vector(), want[name]) << name;
  }
  auto pos = [&](const std::string& n) { return std::find(order.begin(), order.end(), n) - order.begin(); };
  EXPECT_LT(pos("b1"), pos("b0")) << "the last layer's gradients are final first";
  EXPECT_LT(pos("w1"), pos("w0"));
}

// The overlapped reduction (begin, ready from the backward, finish) starts buckets while the backward runs, and gives
// the same gradients, bit for bit, as reduce() after the backward.
TEST(GradientBuckets, OverlappedWithTheBackwardEqualsReduceAfterIt) {
  const Tensor x = small_input();
  for (float weight : {1.0f, 0.75f}) {
    auto p = small_params();
    TwinRanks twin;
    // 4-byte floats, cap 40 bytes: [w2 15], [b1 3, w1 18], [b0 6, w0 30].
    train::GradientBuckets buckets(p, 40, twin);
    ASSERT_EQ(buckets.buckets().size(), 3u);
    small_loss(p, x).backward();
    buckets.reduce(weight);
    std::map<std::string, std::vector<float>> want;
    for (auto& [name, t] : p) {
      want[name] = t.grad().to_vector();
      t.zero_grad();
    }
    EXPECT_EQ(twin.started, 3);

    twin.started = 0;
    buckets.begin(weight);
    small_loss(p, x).backward([&](const Tensor& leaf) { buckets.ready(leaf); });
    const int started_in_backward = twin.started;
    buckets.finish();
    EXPECT_GE(started_in_backward, 2) << "buckets whose gradients were final started inside the backward";
    EXPECT_EQ(twin.started, 3);
    EXPECT_GT(twin.progress_calls, 0);
    for (auto& [name, t] : p) EXPECT_EQ(t.grad().to_vector(), want[name]) << name << " weight " << weight;
    EXPECT_EQ(buckets.calls(), 2);
  }
}

// A rank with no instance in a step (learn_nothing: no backward, weight 0) starts the same buckets in the same order.
TEST(GradientBuckets, WithoutABackwardEveryBucketStartsAtFinish) {
  auto p = small_params();
  TwinRanks twin;
  train::GradientBuckets buckets(p, 40, twin);
  buckets.begin(0.0f);
  EXPECT_EQ(twin.started, 0);
  buckets.finish();
  EXPECT_EQ(twin.started, 3);
  for (auto& [name, t] : p) EXPECT_FALSE(t.grad().defined()) << name << ": no rank had a gradient";
  EXPECT_NE(test::error_of([&] { buckets.finish(); }).find("finish() without begin()"), std::string::npos);
}

TEST(GradientBuckets, LayoutIsReverseParameterOrderClosedAtTheCap) {
  auto one = dist::single_process();
  // 4-byte floats, cap 400 bytes = 100 floats: [p4 60, p3 50] (110 >= 100), [p2 200] alone, [p1 10, p0 20] (rest).
  train::GradientBuckets g(params_of_sizes({20, 10, 200, 50, 60}), 400, *one);
  ASSERT_EQ(g.buckets().size(), 3u);
  EXPECT_EQ(g.buckets()[0], (std::vector<size_t>{4, 3}));
  EXPECT_EQ(g.buckets()[1], (std::vector<size_t>{2}));
  EXPECT_EQ(g.buckets()[2], (std::vector<size_t>{1, 0}));
  EXPECT_EQ(g.bucket_floats(0), 110);
  EXPECT_EQ(g.bucket_floats(2), 30);
}

// DDP's first-bucket rule: with the default 25 MiB cap, the first bucket (the last parameters) closes at 1 MiB.
TEST(GradientBuckets, TheFirstBucketClosesAtOneMiB) {
  auto one = dist::single_process();
  // floats: p3 200000 (0.76 MiB), p2 100000 (+0.38: 1.14 MiB >= 1 MiB: closes), then p1, p0 (0.76 MiB) in the
  // 25 MiB bucket.
  train::GradientBuckets g(params_of_sizes({100000, 100000, 100000, 200000}),
                           static_cast<int64_t>(train::kDefaultBucketMiB * 1048576.0), *one);
  ASSERT_EQ(g.buckets().size(), 2u);
  EXPECT_EQ(g.buckets()[0], (std::vector<size_t>{3, 2}));
  EXPECT_EQ(g.buckets()[1], (std::vector<size_t>{1, 0}));
}

TEST(GradientBuckets, OneRankKeepsGradientsAndScalesByTheWeight) {
  auto one = dist::single_process();
  auto p = params_of_sizes({5, 3});
  const std::vector<float> g0 = {1, -2, 3.5f, 0.25f, 7}, g1 = {2, 4, 8};
  p[0].second.set_grad(Tensor::from_vector(g0, {5}));
  // p1 has no gradient: it stays without one (SGD skips it, as in one process).
  train::GradientBuckets buckets(p, 8, *one);
  buckets.reduce(1.0f);
  EXPECT_EQ(p[0].second.grad().to_vector(), g0);
  EXPECT_EQ(buckets.calls(), 0) << "one rank, weight 1: nothing to do";
  buckets.reduce(0.5f);
  EXPECT_EQ(p[0].second.grad().to_vector(), (std::vector<float>{0.5f, -1, 1.75f, 0.125f, 3.5f}));
  EXPECT_FALSE(p[1].second.grad().defined());
  p[1].second.set_grad(Tensor::from_vector(g1, {3}));
  buckets.reduce(2.0f);
  EXPECT_EQ(p[1].second.grad().to_vector(), (std::vector<float>{4, 8, 16}));
}

TEST(Dist, WithoutALauncherTheWorldIsOneProcess) {
  EnvGuard a("OMPI_COMM_WORLD_SIZE", nullptr), b("PMIX_RANK", nullptr), c("PMI_SIZE", nullptr);
  EXPECT_FALSE(dist::launched_by_mpi_launcher());
  auto w = dist::from_environment();
  EXPECT_EQ(w->size(), 1);
  EXPECT_EQ(w->rank(), 0);
  EXPECT_EQ(w->backend(), "single");
  std::vector<float> v = {1, 2};
  w->allreduce_mean(v.data(), 2);
  EXPECT_EQ(v, (std::vector<float>{1, 2}));
  int mine = 7, all = 0;
  w->allgather(&mine, sizeof mine, &all);
  EXPECT_EQ(all, 7);
}

TEST(Dist, UnderALauncherWithoutLibmpiTheErrorIsOneClearLine) {
  EnvGuard a("OMPI_COMM_WORLD_SIZE", "2"), b("ISLKD_LIBMPI", "/nonexistent/libmpi.so.40");
  const std::string e = test::error_of([] { dist::from_environment(); });
  EXPECT_NE(e.find("launched by mpirun"), std::string::npos) << e;
  EXPECT_NE(e.find("/nonexistent/libmpi.so.40"), std::string::npos) << e;
  EXPECT_NE(e.find("cannot be loaded"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}
