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

using namespace islkd;

namespace {

const std::string kExe = std::string(ISLKD_BINARY_DIR) + "/apps/train_kd_emu";
const std::string kShim = ISLKD_NCCL_SHIM;

std::string dir() { return ::testing::TempDir(); }

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

bool have_mpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

struct AppRun {
  int exit_code = -1;
  std::string out, err;
};

// train_kd_emu on the emulated device with `env` (VAR=value ...), as one process (`ranks` 0) or under mpirun on
// loopback with the settings of train_kd_mpi_test.cpp; 1 thread per rank, 300 s at most.
AppRun run_emu(int ranks, const std::string& env, const std::string& args, const std::string& tag) {
  const std::string cwd = dir() + "/islkd_nccl_" + tag + ".cwd";
  std::filesystem::create_directories(cwd);
  const std::string out = cwd + "/stdout", err = cwd + "/stderr";
  std::string launch = "env ISLKD_EMULATED_CUDA=1 OMP_NUM_THREADS=1 " + env + " timeout 300 " + kExe;
  if (ranks > 0) {
    // Two emulated devices: each rank takes the one of its local rank, as on a GPU machine.
    std::string forward = " -x ISLKD_EMULATED_CUDA=2 -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=passive";
    for (size_t at = 0; at < env.size();) {  // every VAR=value of env forwarded to the ranks
      size_t end = env.find(' ', at);
      if (end == std::string::npos) end = env.size();
      if (end > at) forward += " -x " + env.substr(at, end - at);
      at = end + 1;
    }
    launch = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 mpirun -np " +
             std::to_string(ranks) +
             " --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo" + forward +
             " " + kExe;
  }
  const std::string cmd = "cd " + cwd + " && " + launch + " " + args + " > " + out + " 2> " + err;
  const int status = std::system(cmd.c_str());
  AppRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

std::string make_teacher() {
  const std::string path = dir() + "/islkd_nccl_teacher_" + std::to_string(::getpid()) + ".safetensors";
  if (std::filesystem::exists(path)) return path;
  models::ModelConfig c;
  c.num_classes = 10;
  c.in_channels = 1;
  c.seed = 99;
  auto m = models::create_model("resnet8", c);
  checkpoint::save(path, *m);
  return path;
}

// 11 instances in global batches of 8: a step of 4 + 4, then an uneven one of 1 + 2 (rank weights 2/3 and 4/3), so
// the device packing's weight is exercised too.
std::string args(const std::string& teacher, const std::string& device = "cuda") {
  return "--model resnet8 --teacher " + teacher + " --teacher-model resnet8 --method kd --device " + device +
         " --threads 1 --workers 1 --seed 7 --limit 11 "
         "--test-limit 8 --batch-size 8 --epochs 1 --bucket-mb 0.1 ";
}

std::map<std::string, safetensors::Entry> tensors_of(const std::string& path) {
  std::map<std::string, safetensors::Entry> m;
  for (auto& e : safetensors::load(path).entries) m[e.name] = e;
  return m;
}

// Every tensor of `a` and `b` (parameters, momentum = the steps' gradients + weight decay, batch-norm buffers)
// equal bit for bit; returns how many float tensors were compared.
int expect_same_tensors(const std::string& a, const std::string& b) {
  auto ta = tensors_of(a), tb = tensors_of(b);
  EXPECT_EQ(ta.size(), tb.size());
  int compared = 0;
  for (const auto& [name, e] : ta) {
    if (!tb.count(name)) {
      ADD_FAILURE() << name << " missing in " << b;
      continue;
    }
    const safetensors::Entry& f = tb.at(name);
    EXPECT_EQ(f.shape, e.shape) << name;
    EXPECT_EQ(f.i64, e.i64) << name;
    EXPECT_EQ(f.f32.size(), e.f32.size()) << name;
    if (!e.f32.empty() && f.f32.size() == e.f32.size()) {
      EXPECT_EQ(std::memcmp(f.f32.data(), e.f32.data(), e.f32.size() * sizeof(float)), 0) << name << " differs";
      ++compared;
    }
  }
  return compared;
}

}  // namespace

// 2 ranks, 2 steps (one uneven): the NCCL path (device buckets through the shim, several buckets in one group) and
// the default's fallback for the emulated device without ISLKD_LIBNCCL (MPI through host memory, after one warning
// line) end with the same tensors, bit for bit, and the NCCL run's two ranks with the same tensors.
TEST(NcclShimMpi, TwoRankNcclBucketsEqualTheMpiAllreducePathBitForBit) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not found: the data-parallel tests need Open MPI (openmpi-bin)";
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
