// The NCCL gradient path (engine/train/nccl.cpp, GradientBuckets' device buckets, the comm stream) run in CI: train_kd
// on the emulated CUDA device, with the NCCL shim (kernels/emu/shim/nccl_shim.cpp: NCCL's calls served over MPI
// between the ranks' host memory) loaded through ISLKD_LIBNCCL, against the host-staged MPI_Allreduce path. The
// arithmetic of the two is the same (weight x gradient, the sum over 2 ranks, x 1/2), so the tensors must be equal
// bit for bit. Label `mpi`; the 2-rank cases are skipped, saying so, where mpirun is absent.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "models/registry.h"
#include "tests/mpi/mpi_util.h"

using namespace islkd;
using namespace islkd::mpi_test;

namespace {

const std::string kExe = std::string(ISLKD_BINARY_DIR) + "/apps/train_kd_emu";
const std::string kShim = ISLKD_NCCL_SHIM;

// train_kd_emu on the emulated device with `env` (VAR=value ...), as one process (`ranks` 0) or under mpirun on
// loopback with the settings of train_kd_mpi_test.cpp; 1 thread per rank, 300 s at most.
AppRun run_emu(int ranks, const std::string& env, const std::string& args, const std::string& tag) {
  std::string launch = "env ISLKD_EMULATED_CUDA=1 OMP_NUM_THREADS=1 " + env + " timeout 300 " + kExe;
  if (ranks > 0) {
    // Two emulated devices: each rank takes the one of its local rank, as on a GPU machine.
    std::string forward = " -x ISLKD_EMULATED_CUDA=2";
    for (size_t at = 0; at < env.size();) {  // every VAR=value of env forwarded to the ranks
      size_t end = env.find(' ', at);
      if (end == std::string::npos) end = env.size();
      if (end > at) forward += " -x " + env.substr(at, end - at);
      at = end + 1;
    }
    launch = mpirun_on_loopback(ranks, 300) + forward + " " + kExe;
  }
  return run_in_folder(launch + " " + args, "nccl_" + tag);
}

// 11 instances in global batches of 8: a step of 4 + 4, then an uneven one of 1 + 2 (rank weights 2/3 and 4/3), so
// the device packing's weight is exercised too.
std::string args(const std::string& teacher, const std::string& device = "cuda") {
  return "--model resnet8 --teacher " + teacher + " --teacher-model resnet8 --method kd --device " + device +
         " --threads 1 --workers 1 --seed 7 --limit 11 "
         "--test-limit 8 --batch-size 8 --epochs 1 --bucket-mb 0.1 ";
}

}  // namespace

// 2 ranks, 2 steps (one uneven): the NCCL path (device buckets through the shim, several buckets, each started in the backward) and
// the default's fallback for the emulated device without ISLKD_LIBNCCL (MPI through host memory, after one warning
// line) end with the same tensors, bit for bit, and the NCCL run's two ranks with the same tensors.
TEST(NcclShimMpi, TwoRankNcclBucketsEqualTheMpiAllreducePathBitForBit) {
  SKIP_WITHOUT_MPIRUN();
  const std::string teacher = make_teacher();
  const std::string nccl = dir() + "/islkd_nccl_2r_nccl.safetensors", mpi = dir() + "/islkd_nccl_2r_mpi.safetensors";
  AppRun a = run_emu(2, "ISLKD_LIBNCCL=" + kShim,
                     args(teacher) + "--grad-allreduce nccl --rank-outputs --out " + nccl, "2r_nccl");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("data-parallel over 2 ranks (mpi): global batch 8 = 2 x 4 per rank"), std::string::npos)
      << a.out;
  EXPECT_NE(a.out.find("over NCCL 2.18.0 (" + kShim + ") on device buffers"), std::string::npos) << a.out;
  AppRun b = run_emu(2, "", args(teacher) + "--out " + mpi, "2r_mpi");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  EXPECT_NE(b.out.find("over MPI through host memory"), std::string::npos) << b.out;
  const std::string warning = "warning: GPU gradients go through host memory over MPI, not NCCL (the emulated CUDA "
                              "device needs the NCCL shim";
  EXPECT_NE(b.err.find(warning), std::string::npos) << b.err;
  EXPECT_EQ(b.err.find(warning), b.err.rfind(warning)) << "one warning line (rank 0's)";
  const int compared = expect_same_tensors(nccl, mpi);
  std::printf("NCCL (shim) vs MPI path: %d float tensors compared bit for bit\n", compared);
  EXPECT_GT(compared, 20);
  EXPECT_GT(expect_same_tensors(nccl, nccl + ".rank1"), 20);
}

// World size 1, the NCCL path forced as the GPU check runs it: NCCL ran (its line), and the gradients passed through
// the device buckets unchanged (x 1, no scaling), so the run equals a plain one-process run bit for bit.
TEST(NcclShimMpi, ForcedNcclWithOneRankRunsAndChangesNothing) {
  const std::string teacher = make_teacher();
  const std::string nccl = dir() + "/islkd_nccl_1r_nccl.safetensors", plain = dir() + "/islkd_nccl_1r.safetensors";
  AppRun a = run_emu(0, "ISLKD_LIBNCCL=" + kShim, args(teacher) + "--grad-allreduce nccl --out " + nccl, "1r_nccl");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("gradients all-reduced over 1 rank in "), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("over NCCL 2.18.0 (" + kShim + ") on device buffers (--grad-allreduce nccl)"),
            std::string::npos)
      << a.out;
  AppRun b = run_emu(0, "", args(teacher) + "--out " + plain, "1r_plain");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  EXPECT_EQ(b.out.find("NCCL"), std::string::npos) << b.out;
  EXPECT_GT(expect_same_tensors(nccl, plain), 20);
}

// --grad-allreduce nccl when NCCL cannot be had stops the run with one line naming the library and the fix.
TEST(NcclShimMpi, ForcedNcclWithoutTheLibraryIsAOneLineError) {
  const std::string teacher = make_teacher();
  AppRun a = run_emu(0, "ISLKD_LIBNCCL=/nonexistent/libnccl.so.2",
                     args(teacher) + "--grad-allreduce nccl --out " + dir() + "/islkd_nccl_missing.safetensors",
                     "missing");
  EXPECT_NE(a.exit_code, 0);
  EXPECT_NE(a.err.find("--grad-allreduce nccl: NCCL: /nonexistent/libnccl.so.2 cannot be loaded"), std::string::npos)
      << a.err;
  EXPECT_NE(a.err.find("ISLKD_LIBNCCL"), std::string::npos) << a.err;
  const std::string cpu_out = dir() + "/islkd_nccl_cpu.safetensors";
  AppRun c = run_emu(0, "", args(teacher, "cpu") + "--grad-allreduce nccl --out " + cpu_out, "cpu");
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.err.find("--grad-allreduce nccl needs --device cuda"), std::string::npos) << c.err;
}
