// What the mpirun tests share (tests/mpi/*_test.cpp, one binary, label `mpi`): launching an app on loopback ranks as
// CI does, a resnet8 teacher with seeded weights, and the bit-for-bit comparison of two checkpoints.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

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

namespace islkd::mpi_test {

inline std::string dir() { return ::testing::TempDir(); }

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline bool have_mpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

#define SKIP_WITHOUT_MPIRUN()                      \
  if (!::islkd::mpi_test::have_mpirun())           \
  GTEST_SKIP() << "mpirun not found: the data-parallel tests need Open MPI (openmpi-bin)"

// mpirun on loopback, as CI runs it (as root: Open MPI needs its two consent variables), every rank with 1 thread,
// ended after `seconds`. The app and its arguments follow.
inline std::string mpirun_on_loopback(int ranks, int seconds) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout " + std::to_string(seconds) +
         " mpirun -np " + std::to_string(ranks) +
         " --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo "
         "-x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=passive";
}

struct AppRun {
  int exit_code = -1;
  std::string out, err;
};

// `launch` (a shell command line) run in a fresh folder <tmp>/islkd_<tag>.cwd, its stdout and stderr kept.
inline AppRun run_in_folder(const std::string& launch, const std::string& tag) {
  const std::string cwd = dir() + "/islkd_" + tag + ".cwd";
  std::filesystem::create_directories(cwd);
  const std::string out = cwd + "/stdout", err = cwd + "/stderr";
  const int status = std::system(("cd " + cwd + " && " + launch + " > " + out + " 2> " + err).c_str());
  AppRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

// A resnet8 teacher with seeded random weights for 10 classes of 1-channel images (the mechanics, not accuracy).
inline std::string make_teacher() {
  const std::string path = dir() + "/islkd_mpi_teacher_" + std::to_string(::getpid()) + ".safetensors";
  if (std::filesystem::exists(path)) return path;
  models::ModelConfig c;
  c.num_classes = 10;
  c.in_channels = 1;
  c.seed = 99;
  auto m = models::create_model("resnet8", c);
  checkpoint::save(path, *m);
  return path;
}

inline std::map<std::string, safetensors::Entry> tensors_of(const std::string& path) {
  std::map<std::string, safetensors::Entry> m;
  for (auto& e : safetensors::load(path).entries) m[e.name] = e;
  return m;
}

// Every tensor of `a` and `b` (parameters, batch-norm buffers, momentum, the curriculum's order) equal bit for bit;
// returns how many float tensors were compared.
inline int expect_same_tensors(const std::string& a, const std::string& b) {
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
    if (!e.f32.empty() && f.f32.size() == e.f32.size()) {  // (memcmp of empty vectors' null data() is undefined)
      EXPECT_EQ(std::memcmp(f.f32.data(), e.f32.data(), e.f32.size() * sizeof(float)), 0) << name << " differs";
      ++compared;
    }
  }
  return compared;
}

}  // namespace islkd::mpi_test
