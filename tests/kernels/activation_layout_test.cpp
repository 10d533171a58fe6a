// The CPU backend's activation layout nChw<B>c on the machine the test runs on: B is the block oneDNN's training
// convolution computes in (16 on AVX-512, 8 on AVX2) unless ISLKD_CPU_CHANNEL_BLOCK forces one, every convolution
// plan of the blocked paths runs a jit kernel whichever block is forced (never oneDNN's ref:any), and an
// unsupported block is an error naming the layout. CI reruns these with the other block forced.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"

using namespace islkd;

namespace {

Conv2dShape conv(int64_t N, int64_t C, int64_t H, int64_t K, int64_t k, int64_t stride) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = s.W = H, s.K = K, s.R = s.S = k, s.stride = stride, s.pad = k / 2, s.groups = 1;
  return s;
}

bool forced() {
  const char* e = std::getenv("ISLKD_CPU_CHANNEL_BLOCK");
  return e && *e;
}

bool is_jit(const std::string& impl) { return impl.rfind("jit", 0) == 0 || impl.rfind("brg", 0) == 0; }

// The convolutions of the zoo's CIFAR ResNets and WRNs (3x3 and 1x1 shortcut, stride 1 and 2, 16..256 channels).
const Conv2dShape kShapes[] = {conv(32, 16, 32, 16, 3, 1), conv(32, 16, 32, 32, 3, 2), conv(32, 16, 32, 32, 1, 2),
                               conv(32, 32, 16, 32, 3, 1), conv(32, 64, 8, 64, 3, 1),  conv(16, 128, 16, 256, 3, 2),
                               conv(16, 256, 8, 256, 3, 1)};

}  // namespace

TEST(ActivationLayout, BlockIsWhatOneDnnPicksOrWhatIsForced) {
  const int64_t B = cpu::activation_block();
  EXPECT_TRUE(B == 8 || B == 16) << B;
  EXPECT_EQ(cpu::activation_layout_name(), "nChw" + std::to_string(B) + "c");
  const int64_t native = cpu::native_activation_block();
  if (forced())
    EXPECT_EQ(B, cpu::parse_channel_block(std::getenv("ISLKD_CPU_CHANNEL_BLOCK")));
  else
    EXPECT_EQ(B, native == 0 ? 8 : native);
  const std::string isa = cpu::onednn_isa();
  if (isa.rfind("avx512_core", 0) == 0) EXPECT_EQ(native, 16) << isa;
  if (isa == "avx2" || isa == "avx2_vnni") EXPECT_EQ(native, 8) << isa;
  std::printf("oneDNN ISA %s, native block %lld, activation layout %s\n", isa.c_str(),
              static_cast<long long>(native), cpu::activation_layout_name().c_str());
}

// On an AVX-512 CPU the convolutions of training and inference run oneDNN's avx512_core kernels, and the
// activation tensors (and so the batch-norm, ReLU and Winograd loops over them) are 16 lanes wide.
TEST(ActivationLayout, AvxFiveTwelveRunsItsOwnKernelsOnSixteenLanes) {
  const std::string isa = cpu::onednn_isa();
  if (isa.rfind("avx512_core", 0) != 0 || forced()) GTEST_SKIP() << "oneDNN ISA " << isa << (forced() ? ", block forced" : "");
  EXPECT_EQ(cpu::activation_block(), 16);
  auto layout = cpu::activation_layout(2, 32, 5, 5);
  EXPECT_EQ(cpu::channel_block(*layout), 16);
  for (const Conv2dShape& s : kShapes) {
    for (int pass = 0; pass < 3; ++pass)
      EXPECT_NE(cpu::conv2d_cb_impl(s, pass, true).find("avx512_core"), std::string::npos)
          << "pass " << pass << " C " << s.C << " K " << s.K << ": " << cpu::conv2d_cb_impl(s, pass, true);
    EXPECT_NE(cpu::conv2d_forward_blocked_impl(s, true, true, false).find("avx512_core"), std::string::npos);
    EXPECT_NE(cpu::conv2d_forward_blocked_impl(s, true, true, true).find("avx512_core"), std::string::npos);
  }
}

// Whatever block is in force (native or forced), no plan of the blocked paths lands on a reference kernel: a forced
// block that the machine's jit kernels do not compute in costs a reorder at the convolution, not a ref:any.
TEST(ActivationLayout, EveryPlanRunsAJitKernel) {
  for (const Conv2dShape& s : kShapes) {
    for (bool x_blk : {true, false}) {
      for (int pass = 0; pass < 3; ++pass) {
        const std::string impl = cpu::conv2d_cb_impl(s, pass, x_blk);
        EXPECT_TRUE(is_jit(impl)) << "pass " << pass << " C " << s.C << " K " << s.K << ": " << impl;
      }
    }
    for (bool bias : {false, true})
      for (bool relu : {false, true})
        for (bool residual : {false, true}) {
          const std::string impl = cpu::conv2d_forward_blocked_impl(s, bias, relu, residual);
          EXPECT_TRUE(is_jit(impl)) << "inference C " << s.C << " K " << s.K << " residual " << residual << ": "
                                    << impl;
        }
  }
  // The first layer (3 input channels, plain image in): forward and weights gradient (no data gradient needed).
  const Conv2dShape first = conv(32, 3, 32, 16, 3, 1);
  EXPECT_TRUE(is_jit(cpu::conv2d_cb_impl(first, 0, false))) << cpu::conv2d_cb_impl(first, 0, false);
  EXPECT_TRUE(is_jit(cpu::conv2d_cb_impl(first, 2, false))) << cpu::conv2d_cb_impl(first, 2, false);
  EXPECT_TRUE(is_jit(cpu::conv2d_forward_blocked_impl(first, true, true, false)));
}

TEST(ActivationLayout, ForcedBlockParsesEightAndSixteenOnly) {
  EXPECT_EQ(cpu::parse_channel_block(nullptr), 0);
  EXPECT_EQ(cpu::parse_channel_block(""), 0);
  EXPECT_EQ(cpu::parse_channel_block("8"), 8);
  EXPECT_EQ(cpu::parse_channel_block("16"), 16);
  for (const char* bad : {"32", "4", "1", "16c", "eight", "-8"}) {
    try {
      cpu::parse_channel_block(bad);
      ADD_FAILURE() << "ISLKD_CPU_CHANNEL_BLOCK=" << bad << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string("nChw") + bad + "c"), std::string::npos) << msg;
      EXPECT_NE(msg.find("ISLKD_CPU_CHANNEL_BLOCK"), std::string::npos) << msg;
    }
  }
}
