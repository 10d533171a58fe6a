// CRD's contrast against a memory bank and the bank's update (kernels/cpu/crd_loss.cpp, ops::crd_contrast_loss,
// ops::crd_memory_update): against a plain double reference of RepDistiller's ContrastMemory scores + ContrastLoss,
// by central finite differences w.r.t. the embedding, Z fixed on the first call only, and the op boundary. The
// PyTorch reference of the whole CRDLoss is tests/engine/objective_crd_test.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/ops.h"
#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

struct Case {
  int64_t B, K1, D, N;
  std::vector<float> u, memory;
  std::vector<int32_t> idx;
};

Case make_case(int64_t B, int64_t K, int64_t D, int64_t N, uint32_t seed) {
  Case c{B, K + 1, D, N, test::random_vector(B * D, seed, -1, 1), test::random_vector(N * D, seed + 1, -1, 1), {}};
  for (int64_t r = 0; r < N; ++r) {  // unit rows, as the bank holds after its first updates
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(c.memory[r * D + d]) * c.memory[r * D + d];
    for (int64_t d = 0; d < D; ++d) c.memory[r * D + d] = static_cast<float>(c.memory[r * D + d] / std::sqrt(s));
  }
  const auto r = test::random_vector(B * (K + 1), seed + 2, 0.0f, 1.0f);
  for (float x : r) c.idx.push_back(std::min<int32_t>(static_cast<int32_t>(x * N), static_cast<int32_t>(N - 1)));
  return c;
}

// ContrastMemory's exp(<M[idx], v> / T) then ContrastLoss, in double; z < 0: Z from this call's scores (returned).
double reference(const Case& c, const std::vector<float>& u, double T, double& z) {
  std::vector<double> e;
  for (int64_t b = 0; b < c.B; ++b) {
    double n2 = 0;
    for (int64_t d = 0; d < c.D; ++d) n2 += double(u[b * c.D + d]) * u[b * c.D + d];
    for (int64_t k = 0; k < c.K1; ++k) {
      double s = 0;
      for (int64_t d = 0; d < c.D; ++d) s += double(c.memory[c.idx[b * c.K1 + k] * c.D + d]) * u[b * c.D + d];
      e.push_back(std::exp(s / std::sqrt(n2) / T));
    }
  }
  if (z < 0) {
    double s = 0;
    for (double x : e) s += x;
    z = s / static_cast<double>(e.size()) * c.N;
  }
  const double m = c.K1 - 1, pn = 1.0 / c.N, eps = 1e-7;
  double l = 0;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t k = 0; k < c.K1; ++k) {
      const double p = e[b * c.K1 + k] / z;
      l += k == 0 ? std::log(p / (p + m * pn + eps)) : std::log(m * pn / (p + m * pn + eps));
    }
  return -l / c.B;
}

}  // namespace

TEST(CrdLoss, MatchesThePlainReferenceAndFiniteDifferences) {
  struct Size {
    int64_t B, K, D, N;
  };
  for (const Size& s : {Size{1, 1, 1, 3}, Size{2, 3, 5, 7}, Size{3, 31, 4, 37}, Size{4, 6, 33, 11}}) {
    SCOPED_TRACE(::testing::Message() << s.B << " x " << s.K << " x " << s.D << " N " << s.N);
    Case c = make_case(s.B, s.K, s.D, s.N, 5);
    const float T = 0.5f;  // a soft temperature keeps the central differences accurate (0.07 below)
    float z = -1.0f;
    std::vector<float> du(c.u.size());
    const float loss = cpu::crd_contrast_forward_backward(c.B, c.K1, c.D, c.N, c.u.data(), c.memory.data(),
                                                          c.idx.data(), T, &z, du.data());
    double zr = -1;
    const double want = reference(c, c.u, T, zr);
    EXPECT_NEAR(z, zr, 1e-6 * zr);
    EXPECT_NEAR(loss, want, 1e-6 * (1 + std::fabs(want)));
    const double zf = z;  // Z is a constant for the gradient (upstream takes .item())
    std::vector<float> fd(c.u.size());
    const float h = 1e-3f;
    for (size_t i = 0; i < c.u.size(); ++i) {
      std::vector<float> x = c.u;
      double z1 = zf, z2 = zf;
      x[i] += h;
      const double up = reference(c, x, T, z1);
      x[i] -= 2 * h;
      const double down = reference(c, x, T, z2);
      fd[i] = static_cast<float>((up - down) / (2.0 * h));
    }
    EXPECT_TRUE(test::all_close(du, fd, 1e-4f, 2e-3f));
  }
}

TEST(CrdLoss, ZIsFixedOnTheFirstCallOnlyAndTheDefaultTemperatureMatches) {
  Case c = make_case(5, 40, 16, 101, 9);
  float z = -1.0f;
  const float first = cpu::crd_contrast_forward_backward(c.B, c.K1, c.D, c.N, c.u.data(), c.memory.data(),
                                                         c.idx.data(), 0.07f, &z, nullptr);
  double zr = -1;
  EXPECT_NEAR(first, reference(c, c.u, 0.07, zr), 1e-5 * std::fabs(first));
  EXPECT_NEAR(z, zr, 1e-6 * zr);
  const float z_first = z;
  for (float& x : c.u) x *= -0.5f;  // other scores: Z stays
  const float second = cpu::crd_contrast_forward_backward(c.B, c.K1, c.D, c.N, c.u.data(), c.memory.data(),
                                                          c.idx.data(), 0.07f, &z, nullptr);
  EXPECT_EQ(z, z_first);
  double zk = z_first;
  EXPECT_NEAR(second, reference(c, c.u, 0.07, zk), 1e-5 * std::fabs(second));
}

TEST(CrdLoss, MemoryUpdateIsTheNormalisedMomentumMix) {
  Case c = make_case(3, 1, 7, 10, 13);
  const std::vector<int32_t> y = {4, 0, 9};
  std::vector<float> m = c.memory;
  cpu::crd_memory_update(c.B, c.D, c.N, m.data(), c.u.data(), y.data(), 0.5f);
  std::vector<float> want = c.memory;
  for (int64_t b = 0; b < c.B; ++b) {
    double nu = 0, nr = 0;
    for (int64_t d = 0; d < c.D; ++d) nu += double(c.u[b * c.D + d]) * c.u[b * c.D + d];
    std::vector<double> r(c.D);
    for (int64_t d = 0; d < c.D; ++d) {
      r[d] = 0.5 * c.memory[y[b] * c.D + d] + 0.5 * c.u[b * c.D + d] / std::sqrt(nu);
      nr += r[d] * r[d];
    }
    for (int64_t d = 0; d < c.D; ++d) want[y[b] * c.D + d] = static_cast<float>(r[d] / std::sqrt(nr));
  }
  EXPECT_TRUE(test::all_close(m, want, 1e-7f, 1e-6f));
  // -1 skips a row: only row 9 changes.
  std::vector<float> m2 = c.memory;
  const std::vector<int32_t> skip = {-1, -1, 9};
  cpu::crd_memory_update(c.B, c.D, c.N, m2.data(), c.u.data(), skip.data(), 0.5f);
  for (int64_t r = 0; r < c.N; ++r)
    for (int64_t d = 0; d < c.D; ++d)
      EXPECT_EQ(m2[r * c.D + d], r == 9 ? m[r * c.D + d] : c.memory[r * c.D + d]) << r;
}

TEST(CrdLoss, OpGradientReachesTheEmbeddingOnlyAndChecksItsInputs) {
  Case c = make_case(3, 4, 6, 9, 21);
  Tensor u = Tensor::from_vector(c.u, {c.B, c.D}).set_requires_grad(true);
  Tensor mem = Tensor::from_vector(c.memory, {c.N, c.D});
  Tensor idx = Tensor::from_labels(c.idx).view({c.B, c.K1});
  Tensor z = Tensor::full({1}, -1.0f);
  ops::scale(ops::crd_contrast_loss(u, mem, idx, 0.07f, z), 3.0f).backward();
  EXPECT_GT(z.item(), 0.0f);
  std::vector<float> du(c.u.size());
  float zz = z.item();
  cpu::crd_contrast_forward_backward(c.B, c.K1, c.D, c.N, c.u.data(), c.memory.data(), c.idx.data(), 0.07f, &zz,
                                     du.data());
  for (float& x : du) x *= 3.0f;
  EXPECT_TRUE(test::all_close(u.grad(), du, 0.0f, 0.0f));
  // The update leaves every row but y's alone.
  Tensor y = Tensor::from_labels({2, 7, 0});
  ops::crd_memory_update(mem, u, y, 0.5f);
  const std::vector<float> after = mem.to_vector();
  for (int64_t r : {1, 3, 4, 5, 6, 8})
    for (int64_t d = 0; d < c.D; ++d) EXPECT_EQ(after[r * c.D + d], c.memory[r * c.D + d]);
  // Boundary checks name the op.
  std::vector<int32_t> bad = c.idx;
  bad[5] = static_cast<int32_t>(c.N);
  const Tensor bad_idx = Tensor::from_labels(bad).view({c.B, c.K1});
  EXPECT_NE(test::error_of([&] { ops::crd_contrast_loss(u, mem, bad_idx, 0.07f, z); }).find("outside the memory"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { ops::crd_contrast_loss(u, mem, idx.view({c.B * c.K1, 1}), 0.07f, z); })
                .find("crd_contrast_loss"),
            std::string::npos);
  EXPECT_THROW(ops::crd_memory_update(mem, u, Tensor::from_labels({0, 1}), 0.5f), Error);
}
