// Data-parallel plumbing that runs without mpirun: the gradient buckets' layout and their 1-rank behaviour, and the
// communicator chosen from the environment (one process, or one clear error when libmpi is missing under mpirun).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

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

}  // namespace

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
