// NCCL's loader (engine/train/nccl.cpp) without mpirun: the one-line error for a missing library, the emulated shim
// serving a 1-rank communicator under GradientBuckets' device path (the same numbers as the host path), and the
// system's real libnccl.so.2, where one is installed, providing every function islkd resolves. The loads run in a
// child process (EXPECT_EXIT): a loaded NCCL stays for the life of a process.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/train/dist.h"
#include "engine/train/grad_buckets.h"
#include "engine/train/nccl.h"

using namespace islkd;

namespace {

void set_library(const std::string& path) { setenv("ISLKD_LIBNCCL", path.c_str(), 1); }

// The shim case, in the child: 0 when everything holds, else the number of the first check that failed.
int shim_case() {
  set_library(ISLKD_NCCL_SHIM);
  setenv("ISLKD_EMULATED_CUDA", "1", 1);
  std::shared_ptr<dist::Communicator> world = dist::single_process();
  std::shared_ptr<dist::Nccl> nccl = dist::Nccl::create(*world);
  if (nccl->version() != 21800 || nccl->version_text() != "2.18.0") return 2;
  const std::vector<float> g0 = {1.0f, -3.0f, 0.1f}, g1 = {7.0f, 0.3f};
  std::vector<std::pair<std::string, Tensor>> params = {
      {"a", Tensor::zeros({3}, Device::CUDA).set_requires_grad(true)},
      {"b", Tensor::zeros({2}, Device::CUDA).set_requires_grad(true)},
      {"c", Tensor::zeros({4}, Device::CUDA).set_requires_grad(true)}};
  params[0].second.set_grad(Tensor::from_vector(g0, {3}, Device::CUDA));
  params[1].second.set_grad(Tensor::from_vector(g1, {2}, Device::CUDA));
  train::GradientBuckets buckets(params, 20, *world, nccl);  // 2 buckets: {c, b}, {a}
  if (buckets.buckets().size() != 2) return 3;
  buckets.reduce(0.5f);
  const std::vector<float> a = params[0].second.grad().to_vector(), b = params[1].second.grad().to_vector();
  for (size_t i = 0; i < g0.size(); ++i)
    if (a[i] != g0[i] * 0.5f) return 4;
  for (size_t i = 0; i < g1.size(); ++i)
    if (b[i] != g1[i] * 0.5f) return 5;
  if (params[2].second.grad().defined()) return 6;
  if (buckets.calls() != 1) return 7;
  return 0;
}

}  // namespace

TEST(NcclLoader, AMissingLibraryIsAOneLineErrorNamingItAndTheFix) {
  set_library("/nonexistent/libnccl.so.2");
  std::string why;
  EXPECT_FALSE(dist::Nccl::load(&why));
  EXPECT_NE(why.find("/nonexistent/libnccl.so.2 cannot be loaded"), std::string::npos) << why;
  EXPECT_NE(why.find("ISLKD_LIBNCCL"), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  unsetenv("ISLKD_LIBNCCL");
}

// World size 1 through the shim, on the emulated device: weight 0.5 (an uneven last batch's) gives 0.5 x the
// gradient, as the host path does; a parameter without a gradient stays without one.
TEST(NcclLoader, TheShimServesOneRankAndDeviceBucketsMatchTheHostPath) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(shim_case()), ::testing::ExitedWithCode(0), "");
}

// The real library, where this machine has one: every function resolves by the names islkd uses (no GPU needed).
TEST(NcclLoader, TheSystemLibncclProvidesEveryFunction) {
  std::string path;
  for (const char* p : {"/usr/local/cuda/lib64/libnccl.so.2", "/usr/lib/x86_64-linux-gnu/libnccl.so.2",
                        "/usr/local/cuda/lib/libnccl.so.2"})
    if (std::filesystem::exists(p)) {
      path = p;
      break;
    }
  if (path.empty()) GTEST_SKIP() << "no libnccl.so.2 installed on this machine";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        set_library(path);
        std::string why;
        if (!dist::Nccl::load(&why)) {
          std::fprintf(stderr, "%s\n", why.c_str());
          std::exit(1);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}
