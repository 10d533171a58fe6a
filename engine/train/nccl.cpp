// NCCL reached through dlopen: only the functions used here are resolved, by name, with nccl.h's ABI written out
// (ncclUniqueId is 128 bytes passed by value; enums are ints; ncclComm_t and cudaStream_t are pointers), so that
// building needs no NCCL header either.
#include "engine/train/nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "engine/train/dl_library.h"
#include "kernels/common/error.h"

namespace islkd::dist {

namespace {

struct UniqueId {
  char internal[128];  // NCCL_UNIQUE_ID_BYTES
};
constexpr int kSuccess = 0;      // ncclSuccess
constexpr int kFloat32 = 7;      // ncclFloat32
constexpr int kSum = 0;          // ncclSum
constexpr int kInProgress = 7;   // ncclInProgress (non-blocking communicators only; ours are blocking)

struct NcclApi {
  void* lib = nullptr;
  std::string path;
  int (*GetVersion)(int*) = nullptr;
  int (*GetUniqueId)(UniqueId*) = nullptr;
  int (*CommInitRank)(void**, int, UniqueId, int) = nullptr;
  int (*AllReduce)(const void*, void*, size_t, int, int, void*, void*) = nullptr;
  int (*GroupStart)() = nullptr;
  int (*GroupEnd)() = nullptr;
  int (*CommDestroy)(void*) = nullptr;
  const char* (*GetErrorString)(int) = nullptr;
};

NcclApi g_nccl;  // loaded at most once per process
std::mutex g_nccl_mutex;

template <typename F>
void resolve(void* lib, const char* name, F& fn, const std::string& path) {
  resolve_function(lib, name, fn, "NCCL: ", path, "islkd needs NCCL >= 2.7's libnccl.so.2");
}

void load_nccl() {
  const std::string path = nccl_library_name();
  void* lib = open_library(path, RTLD_NOW | RTLD_LOCAL, "NCCL: ",
                           "install NCCL (the system's libnccl2, or pip's nvidia-nccl-cu12 beside torch), point "
                           "ISLKD_LIBNCCL at its libnccl.so.2, or pass --grad-allreduce mpi");
  NcclApi& n = g_nccl;
  n.lib = lib;
  n.path = path;
  resolve(lib, "ncclGetVersion", n.GetVersion, path);
  resolve(lib, "ncclGetUniqueId", n.GetUniqueId, path);
  resolve(lib, "ncclCommInitRank", n.CommInitRank, path);
  resolve(lib, "ncclAllReduce", n.AllReduce, path);
  resolve(lib, "ncclGroupStart", n.GroupStart, path);
  resolve(lib, "ncclGroupEnd", n.GroupEnd, path);
  resolve(lib, "ncclCommDestroy", n.CommDestroy, path);
  resolve(lib, "ncclGetErrorString", n.GetErrorString, path);
}

void check(int rc, const char* call) {
  if (rc == kSuccess) return;
  const char* what = g_nccl.GetErrorString ? g_nccl.GetErrorString(rc) : nullptr;
  ISLKD_FAIL("NCCL: ", call, " failed: ", what ? what : "unknown error", " (ncclResult_t ", rc,
             rc == kInProgress ? ", in progress" : "", ")");
}

}  // namespace

std::string nccl_library_name() {
  const char* env = std::getenv("ISLKD_LIBNCCL");
  return env && *env ? env : "libnccl.so.2";
}

bool nccl_library_named() {
  const char* env = std::getenv("ISLKD_LIBNCCL");
  return env && *env;
}

bool Nccl::load(std::string* why) {
  std::lock_guard<std::mutex> lock(g_nccl_mutex);
  const std::string path = nccl_library_name();
  if (g_nccl.lib) {
    if (g_nccl.path == path) return true;
    if (why) *why = "NCCL: " + g_nccl.path + " is loaded already in this process, not " + path;
    return false;
  }
  try {
    load_nccl();
    return true;
  } catch (const Error& e) {
    if (g_nccl.lib) dlclose(g_nccl.lib);
    g_nccl = NcclApi{};  // a later call may try again (another ISLKD_LIBNCCL)
    if (why) *why = e.what();
    return false;
  }
}

std::unique_ptr<Nccl> Nccl::create(Communicator& world) {
  std::string why;
  ISLKD_CHECK(load(&why), why);
  NcclApi& n = g_nccl;
  std::unique_ptr<Nccl> c(new Nccl);
  c->library_ = n.path;
  check(n.GetVersion(&c->version_), "ncclGetVersion");
  UniqueId id{};
  if (world.is_root()) check(n.GetUniqueId(&id), "ncclGetUniqueId");
  world.broadcast(&id, sizeof id, 0);
  check(n.CommInitRank(&c->comm_, world.size(), id, world.rank()), "ncclCommInitRank");
  return c;
}

Nccl::~Nccl() {
  if (comm_) g_nccl.CommDestroy(comm_);
}

void Nccl::allreduce_sum(const std::vector<Buffer>& buffers, void* stream) {
  NcclApi& n = g_nccl;
  check(n.GroupStart(), "ncclGroupStart");
  int rc = kSuccess;
  for (const Buffer& b : buffers) {
    rc = n.AllReduce(b.data, b.data, static_cast<size_t>(b.count), kFloat32, kSum, comm_, stream);
    if (rc != kSuccess) break;
  }
  const int end = n.GroupEnd();  // closes the group even after a failed call, so that NCCL's state stays sane
  check(rc, "ncclAllReduce");
  check(end, "ncclGroupEnd");
}

std::string Nccl::version_text() const {
  // NCCL_VERSION_CODE: major * 10000 + minor * 100 + patch since 2.9, major * 1000 + minor * 100 + patch before.
  const int v = version_;
  const int major = v >= 10000 ? v / 10000 : v / 1000;
  const int minor = v >= 10000 ? (v / 100) % 100 : (v / 100) % 10;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

}  // namespace islkd::dist
