// The communicators: the 1-rank identity, and Open MPI reached through dlopen (only the functions used here are
// resolved, by name) so that the apps never link MPI and start on machines without it.
#include "engine/train/dist.h"

#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/train/dl_library.h"
#include "kernels/common/error.h"

namespace islkd::dist {

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void allreduce_mean(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void allgather(const void* mine, int64_t bytes, void* all) override {
    if (bytes > 0 && all != mine) std::memmove(all, mine, static_cast<size_t>(bytes));
  }
  void broadcast(void*, int64_t, int root) override {
    ISLKD_CHECK(root == 0, "broadcast from rank ", root, " in a world of 1 rank");
  }
  void barrier() override {}
  void start_allreduce_sum(float*, int64_t) override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

// Open MPI's ABI (libmpi.so.40): handles are pointers to the library's predefined objects, MPI_IN_PLACE is
// (void*)1, MPI_THREAD_FUNNELED is 1, MPI_Request is a pointer and MPI_STATUSES_IGNORE is null (mpi.h of Open MPI 4
// and 5). Only the main thread calls MPI.
using Handle = void*;
void* const kInPlace = reinterpret_cast<void*>(1);
constexpr int kThreadFunneled = 1;
constexpr int kSuccess = 0;

struct MpiApi {
  void* lib = nullptr;
  int (*Initialized)(int*) = nullptr;
  int (*Finalized)(int*) = nullptr;
  int (*Init_thread)(int*, char***, int, int*) = nullptr;
  int (*Finalize)() = nullptr;
  int (*Comm_rank)(Handle, int*) = nullptr;
  int (*Comm_size)(Handle, int*) = nullptr;
  int (*Allreduce)(const void*, void*, int, Handle, Handle, Handle) = nullptr;
  int (*Allgather)(const void*, int, Handle, void*, int, Handle, Handle) = nullptr;
  int (*Bcast)(void*, int, Handle, int, Handle) = nullptr;
  int (*Barrier)(Handle) = nullptr;
  int (*Abort)(Handle, int) = nullptr;
  // The non-blocking forms: every collective is started, then polled under the --dist-timeout watchdog.
  int (*Iallreduce)(const void*, void*, int, Handle, Handle, Handle, Handle*) = nullptr;
  int (*Iallgather)(const void*, int, Handle, void*, int, Handle, Handle, Handle*) = nullptr;
  int (*Ibcast)(void*, int, Handle, int, Handle, Handle*) = nullptr;
  int (*Ibarrier)(Handle, Handle*) = nullptr;
  int (*Testall)(int, Handle*, int*, void*) = nullptr;
  Handle comm_world = nullptr, type_float = nullptr, type_double = nullptr, type_byte = nullptr, op_sum = nullptr;
  int size = 1;
  bool running = false;  // initialised here and not finalised
};

MpiApi g_mpi;  // MPI is per process: loaded and initialised at most once
std::mutex g_mpi_mutex;

std::string library_name() {
  const char* env = std::getenv("ISLKD_LIBMPI");
  return env && *env ? env : "libmpi.so.40";
}

constexpr const char* kNeed = "islkd needs Open MPI's libmpi.so.40";

template <typename F>
void resolve(void* lib, const char* name, F& fn, const std::string& path) {
  resolve_function(lib, name, fn, "launched by mpirun, but ", path, kNeed);
}

Handle object(void* lib, const char* name, const std::string& path) {
  return library_symbol(lib, name, "launched by mpirun, but ", path,
                        std::string(kNeed) + "; MPICH and others are not supported yet");
}

void load_mpi() {
  const std::string path = library_name();
  // RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's symbols from the global scope.
  void* lib = open_library(path, RTLD_NOW | RTLD_GLOBAL,
                           "launched by mpirun (OMPI_COMM_WORLD_SIZE / PMI variables are set), but Open MPI's library ",
                           "install Open MPI (Debian: libopenmpi3 / openmpi-bin) or point ISLKD_LIBMPI at libmpi.so.40");
  MpiApi& m = g_mpi;
  m.lib = lib;
  resolve(lib, "MPI_Initialized", m.Initialized, path);
  resolve(lib, "MPI_Finalized", m.Finalized, path);
  resolve(lib, "MPI_Init_thread", m.Init_thread, path);
  resolve(lib, "MPI_Finalize", m.Finalize, path);
  resolve(lib, "MPI_Comm_rank", m.Comm_rank, path);
  resolve(lib, "MPI_Comm_size", m.Comm_size, path);
  resolve(lib, "MPI_Allreduce", m.Allreduce, path);
  resolve(lib, "MPI_Allgather", m.Allgather, path);
  resolve(lib, "MPI_Bcast", m.Bcast, path);
  resolve(lib, "MPI_Barrier", m.Barrier, path);
  resolve(lib, "MPI_Abort", m.Abort, path);
  resolve(lib, "MPI_Iallreduce", m.Iallreduce, path);
  resolve(lib, "MPI_Iallgather", m.Iallgather, path);
  resolve(lib, "MPI_Ibcast", m.Ibcast, path);
  resolve(lib, "MPI_Ibarrier", m.Ibarrier, path);
  resolve(lib, "MPI_Testall", m.Testall, path);
  m.comm_world = object(lib, "ompi_mpi_comm_world", path);
  m.type_float = object(lib, "ompi_mpi_float", path);
  m.type_double = object(lib, "ompi_mpi_double", path);
  m.type_byte = object(lib, "ompi_mpi_byte", path);
  m.op_sum = object(lib, "ompi_mpi_op_sum", path);
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return end && *end == '\0' && x >= 0 && x < INT_MAX ? static_cast<int>(x) : fallback;
}

void check(int rc, const char* call) {
  ISLKD_CHECK(rc == kSuccess, call, " failed with MPI error code ", rc);
}

// Element counts go to MPI as int: larger buffers are sent in pieces.
constexpr int64_t kMaxCount = INT_MAX / 8;

class Mpi final : public Communicator {
 public:
  Mpi() {
    MpiApi& m = g_mpi;
    check(m.Comm_rank(m.comm_world, &rank_), "MPI_Comm_rank");
    check(m.Comm_size(m.comm_world, &size_), "MPI_Comm_size");
    // The launcher's view of this machine's ranks (Open MPI; MPICH / Slurm names as fallbacks).
    local_rank_ = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("MPI_LOCALRANKID", env_int("SLURM_LOCALID", rank_)));
    local_size_ = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("MPI_LOCALNRANKS", size_));
    local_size_ = std::max(local_size_, 1);
    m.size = size_;
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend() const override { return "mpi"; }

  // Every collective is the non-blocking form, waited for by wait(): the same algorithms' results, and a rank that
  // hangs is noticed (the blocking forms would wait forever).
  void allreduce_mean(float* data, int64_t n) override {
    start_allreduce_sum(data, n);
    wait("MPI_Allreduce");
    const float inv = 1.0f / static_cast<float>(size_);
    if (size_ > 1)
      for (int64_t i = 0; i < n; ++i) data[i] *= inv;
  }
  void allreduce_sum(double* data, int64_t n) override {
    start_sum(data, n, g_mpi.type_double, sizeof(double));
    wait("MPI_Allreduce");
  }
  void allgather(const void* mine, int64_t bytes, void* all) override {
    ISLKD_CHECK(bytes <= kMaxCount, "allgather of ", bytes, " bytes per rank: more than one MPI call can carry");
    MpiApi& m = g_mpi;
    check(m.Iallgather(mine, static_cast<int>(bytes), m.type_byte, all, static_cast<int>(bytes), m.type_byte,
                       m.comm_world, next_request()),
          "MPI_Iallgather");
    wait("MPI_Allgather");
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    MpiApi& m = g_mpi;
    auto* p = static_cast<char*>(data);
    for (int64_t at = 0; at < bytes; at += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, bytes - at));
      check(m.Ibcast(p + at, count, m.type_byte, root, m.comm_world, next_request()), "MPI_Ibcast");
    }
    wait("MPI_Bcast");
  }
  void barrier() override {
    check(g_mpi.Ibarrier(g_mpi.comm_world, next_request()), "MPI_Ibarrier");
    wait("MPI_Barrier");
  }
  void start_allreduce_sum(float* data, int64_t n) override { start_sum(data, n, g_mpi.type_float, sizeof(float)); }
  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    check(g_mpi.Testall(static_cast<int>(requests_.size()), requests_.data(), &done, nullptr), "MPI_Testall");
    if (done) requests_.clear();
  }
  void wait_all() override { wait("MPI_Iallreduce (gradient buckets)"); }
  [[noreturn]] void abort(int code) override {
    g_mpi.Abort(g_mpi.comm_world, code);
    std::_Exit(code);  // MPI_Abort does not return; if it did, this rank still must not go on
  }
  void finalize() override {
    std::lock_guard<std::mutex> lock(g_mpi_mutex);
    if (!g_mpi.running) return;
    g_mpi.running = false;
    g_mpi.Finalize();
  }

 private:
  // In place, non-blocking: the sum over the ranks of `n` elements of `type` (`bytes` each), in pieces MPI's int
  // counts can carry.
  void start_sum(void* data, int64_t n, Handle type, size_t bytes) {
    MpiApi& m = g_mpi;
    auto* p = static_cast<char*>(data);
    for (int64_t at = 0; at < n; at += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, n - at));
      check(m.Iallreduce(kInPlace, p + static_cast<size_t>(at) * bytes, count, type, m.op_sum, m.comm_world,
                         next_request()),
            "MPI_Iallreduce");
    }
  }

  Handle* next_request() {
    requests_.push_back(nullptr);
    return &requests_.back();
  }

  // Polls the started requests until all are complete: tight at first (a collective among ranks in step takes
  // microseconds), then sleeping up to 1 ms between polls (a rank waiting for a slower one leaves the core to it).
  // Past timeout_seconds(), one error line and the end of the run.
  void wait(const char* call) {
    const auto t0 = std::chrono::steady_clock::now();
    auto nap = std::chrono::microseconds(0);
    for (int polls = 0; !requests_.empty(); ++polls) {
      progress();
      if (requests_.empty()) return;
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (timeout_seconds() > 0 && waited > timeout_seconds()) {
        std::fprintf(stderr,
                     "%s: error: rank %d of %d waited %.0f s in %s for the other ranks (--dist-timeout %g): one of "
                     "them hung or died; ending the run\n",
                     program_invocation_short_name, rank_, size_, waited, call, timeout_seconds());
        std::fflush(stderr);
        abort(1);
      }
      if (polls < 1000) continue;
      nap = std::min(std::chrono::microseconds(1000), nap + std::chrono::microseconds(10));
      std::this_thread::sleep_for(nap);
    }
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::vector<Handle> requests_;  // started, not yet complete (MPI writes a handle only during the call starting it)
};

}  // namespace

std::shared_ptr<Communicator> single_process() { return std::make_shared<SingleProcess>(); }

bool launched_by_mpi_launcher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    const char* s = std::getenv(v);
    if (s && *s) return true;
  }
  return false;
}

std::shared_ptr<Communicator> from_environment() {
  if (!launched_by_mpi_launcher()) return single_process();
  std::lock_guard<std::mutex> lock(g_mpi_mutex);
  if (!g_mpi.lib) load_mpi();
  MpiApi& m = g_mpi;
  int initialised = 0, finalised = 0;
  check(m.Initialized(&initialised), "MPI_Initialized");
  check(m.Finalized(&finalised), "MPI_Finalized");
  ISLKD_CHECK(!finalised, "MPI was already finalised in this process: one run of MPI per process");
  if (!initialised) {
    int provided = 0;
    check(m.Init_thread(nullptr, nullptr, kThreadFunneled, &provided), "MPI_Init_thread");
    m.running = true;
    ISLKD_CHECK(provided >= kThreadFunneled, "MPI_Init_thread: the library gives thread level ", provided,
                ", islkd needs MPI_THREAD_FUNNELED (its loader threads exist beside the MPI thread)");
  }
  return std::make_shared<Mpi>();
}

void abort_world_after_error(int code) {
  std::lock_guard<std::mutex> lock(g_mpi_mutex);
  if (g_mpi.running && g_mpi.size > 1) {
    g_mpi.Abort(g_mpi.comm_world, code);
    std::_Exit(code);
  }
}

}  // namespace islkd::dist
