// linear on the CUDA backend (cuBLAS Sgemm, column-major, served by the shim under the emulator) against the CPU
// backend, at sizes with 1s and odd numbers; bias broadcast and its gradient (sum_rows).
#include "kernels/cpu/cpu_kernels.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::DeviceVec;

namespace {
struct Mkn {
  int64_t M, K, N;
};
const Mkn kSizes[] = {{1, 1, 1}, {4, 64, 10}, {31, 33, 7}, {33, 1, 31}, {1, 1000, 3}, {100, 17, 1}};
}  // namespace

TEST(CudaLinear, ForwardMatchesCpuWithAndWithoutBias) {
  for (const Mkn& d : kSizes) {
    const auto x = test::random_vector(static_cast<size_t>(d.M * d.K), 1),
               w = test::random_vector(static_cast<size_t>(d.N * d.K), 2),
               b = test::random_vector(static_cast<size_t>(d.N), 3);
    DeviceVec<float> dx(x), dw(w), db(b), dy(static_cast<size_t>(d.M * d.N));
    std::vector<float> ref(static_cast<size_t>(d.M * d.N));
    for (bool bias : {false, true}) {
      cuda::linear_forward(d.M, d.K, d.N, dx.get(), dw.get(), bias ? db.get() : nullptr, dy.get());
      cpu::linear_forward(d.M, d.K, d.N, x.data(), w.data(), bias ? b.data() : nullptr, ref.data());
      EXPECT_TRUE(test::all_close(dy.host(), ref, 1e-5f, 1e-5f))
          << "M" << d.M << " K" << d.K << " N" << d.N << " bias " << bias;
    }
  }
}

TEST(CudaLinear, BackwardMatchesCpu) {
  for (const Mkn& d : kSizes) {
    const auto x = test::random_vector(static_cast<size_t>(d.M * d.K), 4),
               w = test::random_vector(static_cast<size_t>(d.N * d.K), 5),
               dy = test::random_vector(static_cast<size_t>(d.M * d.N), 6);
    DeviceVec<float> d_x(x), d_w(w), d_dy(dy), d_dx(x.size()), d_dw(w.size()), d_db(static_cast<size_t>(d.N));
    std::vector<float> dx(x.size()), dw(w.size()), db(static_cast<size_t>(d.N));
    cuda::linear_backward(d.M, d.K, d.N, d_x.get(), d_w.get(), d_dy.get(), d_dx.get(), d_dw.get(), d_db.get());
    cpu::linear_backward(d.M, d.K, d.N, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    EXPECT_TRUE(test::all_close(d_dx.host(), dx, 1e-5f, 1e-5f)) << "dx M" << d.M << " K" << d.K << " N" << d.N;
    EXPECT_TRUE(test::all_close(d_dw.host(), dw, 1e-5f, 1e-5f)) << "dw M" << d.M << " K" << d.K << " N" << d.N;
    EXPECT_TRUE(test::all_close(d_db.host(), db, 1e-5f, 1e-5f)) << "db M" << d.M << " K" << d.K << " N" << d.N;
  }
}

TEST(CudaLinear, BackwardComputesOnlyTheRequestedGradients) {
  const auto x = test::random_vector(12, 7), w = test::random_vector(15, 8), dy = test::random_vector(20, 9);
  DeviceVec<float> d_x(x), d_w(w), d_dy(dy), d_dw(w.size());
  std::vector<float> dw(w.size());
  cuda::linear_backward(4, 3, 5, d_x.get(), d_w.get(), d_dy.get(), nullptr, d_dw.get(), nullptr);
  cpu::linear_backward(4, 3, 5, x.data(), w.data(), dy.data(), nullptr, dw.data(), nullptr);
  EXPECT_TRUE(test::all_close(d_dw.host(), dw, 1e-5f, 1e-5f));
}
