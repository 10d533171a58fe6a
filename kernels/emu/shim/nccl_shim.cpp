// The NCCL subset that engine/train/nccl.cpp calls, served for the emulated CUDA backend (whose device memory is
// host memory): a shared library (libislkd_nccl_shim.so) that the app dlopens through ISLKD_LIBNCCL, as it would
// dlopen libnccl.so.2 on a GPU machine. A collective of more than one rank is an MPI_Allreduce over MPI_COMM_WORLD
// between the ranks' host buffers, through the libmpi the app has already loaded and initialised (Open MPI's ABI,
// as engine/train/dist.cpp); with one rank it is a copy and needs no MPI.
//
// Stream order: the emulator runs every launch and copy synchronously when it is queued (cudart_shim.cpp: streams
// and events only validate their handles), so when ncclAllReduce is called the work queued before it on any stream
// is done, and once the collective has run its result is there for whatever is queued after. Inside
// ncclGroupStart/End the calls are only recorded, and run, in order, at the outermost ncclGroupEnd, as NCCL
// launches a group's operations there: a caller reading a result before ncclGroupEnd sees stale data here too.
// The stream argument is not checked (the cudart shim's stream registry is not visible from this library).
#include <dlfcn.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>
#include <unistd.h>

#if __has_include(<nccl.h>)
#include <nccl.h>  // the real prototypes: the definitions below must match them (a compile-time ABI check)
#else
// nccl.h of NCCL 2.x, the part used here.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;
typedef struct ncclComm* ncclComm_t;
typedef struct {
  char internal[128];
} ncclUniqueId;
typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
  ncclNumResults = 8
} ncclResult_t;
typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;
typedef enum { ncclFloat32 = 7, ncclFloat = 7, ncclFloat64 = 8, ncclDouble = 8 } ncclDataType_t;
#endif

// What NCCL's communicator is here: the world's shape, checked against MPI's.
struct ncclComm {
  int rank = 0, nranks = 1;
  unsigned long long tag = 0;  // from the unique id: the same on every rank of one communicator
};

namespace {

// The shim's version: 2.18.0, NCCL_VERSION_CODE style (ncclAvg exists since 2.10).
constexpr int kVersion = 21800;
constexpr char kMagic[16] = "islkd-nccl-shim";

void explain(const char* call, const std::string& why) {
  std::fprintf(stderr, "islkd NCCL shim: %s: %s\n", call, why.c_str());
}

// ---- MPI (Open MPI's ABI: handles are pointers to the library's predefined objects; MPI_IN_PLACE is (void*)1) ----
using Handle = void*;
struct Mpi {
  bool loaded = false;
  std::string error;
  int (*Initialized)(int*) = nullptr;
  int (*Comm_rank)(Handle, int*) = nullptr;
  int (*Comm_size)(Handle, int*) = nullptr;
  int (*Allreduce)(const void*, void*, int, Handle, Handle, Handle) = nullptr;
  int (*Bcast)(void*, int, Handle, int, Handle) = nullptr;
  Handle comm_world = nullptr, type_float = nullptr, type_double = nullptr, type_byte = nullptr, op_sum = nullptr;
};
Mpi g_mpi;
std::mutex g_mutex;

// The app's libmpi (already loaded, RTLD_GLOBAL, by dist.cpp), else a fresh dlopen of the same name.
bool load_mpi() {
  if (g_mpi.loaded) return true;
  if (!g_mpi.error.empty()) return false;
  const char* env = std::getenv("ISLKD_LIBMPI");
  const std::string path = env && *env ? env : "libmpi.so.40";
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
  if (!lib) lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    g_mpi.error = "cannot load " + path + " (a communicator of more than one rank runs over MPI)";
    return false;
  }
  auto sym = [&](const char* name) {
    void* p = dlsym(lib, name);
    if (!p && g_mpi.error.empty()) g_mpi.error = path + " has no " + name + " (Open MPI's libmpi.so.40 is needed)";
    return p;
  };
  g_mpi.Initialized = reinterpret_cast<int (*)(int*)>(sym("MPI_Initialized"));
  g_mpi.Comm_rank = reinterpret_cast<int (*)(Handle, int*)>(sym("MPI_Comm_rank"));
  g_mpi.Comm_size = reinterpret_cast<int (*)(Handle, int*)>(sym("MPI_Comm_size"));
  g_mpi.Allreduce = reinterpret_cast<int (*)(const void*, void*, int, Handle, Handle, Handle)>(sym("MPI_Allreduce"));
  g_mpi.Bcast = reinterpret_cast<int (*)(void*, int, Handle, int, Handle)>(sym("MPI_Bcast"));
  g_mpi.comm_world = sym("ompi_mpi_comm_world");
  g_mpi.type_float = sym("ompi_mpi_float");
  g_mpi.type_double = sym("ompi_mpi_double");
  g_mpi.type_byte = sym("ompi_mpi_byte");
  g_mpi.op_sum = sym("ompi_mpi_op_sum");
  if (!g_mpi.error.empty()) return false;
  int initialised = 0;
  g_mpi.Initialized(&initialised);
  if (!initialised) {
    g_mpi.error = "MPI is not initialised (the app initialises it when mpirun starts it)";
    return false;
  }
  g_mpi.loaded = true;
  return true;
}

// ---- groups: the calls between ncclGroupStart and the outermost ncclGroupEnd, run at the end in order ----------
struct Op {
  const void* send;
  void* recv;
  size_t count;
  ncclDataType_t type;
  ncclRedOp_t op;
  ncclComm_t comm;
};
int g_group_depth = 0;
std::vector<Op> g_group;

size_t type_bytes(ncclDataType_t t) { return t == ncclFloat32 ? 4 : 8; }

ncclResult_t run(const Op& o) {
  const size_t bytes = o.count * type_bytes(o.type);
  if (o.comm->nranks == 1) {
    if (o.recv != o.send && bytes) std::memmove(o.recv, o.send, bytes);
    return ncclSuccess;  // the sum and the average of one rank's values are those values
  }
  // MPI counts are ints: larger buffers go in pieces.
  const size_t max_count = INT_MAX / 8;
  void* const in_place = reinterpret_cast<void*>(1);
  for (size_t at = 0; at < o.count; at += max_count) {
    const size_t n = o.count - at < max_count ? o.count - at : max_count;
    const size_t off = at * type_bytes(o.type);
    char* recv = static_cast<char*>(o.recv) + off;
    const char* send = static_cast<const char*>(o.send) + off;
    const int rc = g_mpi.Allreduce(send == recv ? in_place : send, recv, static_cast<int>(n),
                                   o.type == ncclFloat32 ? g_mpi.type_float : g_mpi.type_double, g_mpi.op_sum,
                                   g_mpi.comm_world);
    if (rc != 0) {
      explain("ncclAllReduce", "MPI_Allreduce failed with MPI error code " + std::to_string(rc));
      return ncclSystemError;
    }
  }
  if (o.op == ncclAvg) {
    // NCCL's floating-point average is a pre-multiplied sum; x 1/nranks after the sum is the same for 2 ranks.
    if (o.type == ncclFloat32) {
      const float inv = 1.0f / static_cast<float>(o.comm->nranks);
      float* r = static_cast<float*>(o.recv);
      for (size_t i = 0; i < o.count; ++i) r[i] *= inv;
    } else {
      const double inv = 1.0 / o.comm->nranks;
      double* r = static_cast<double*>(o.recv);
      for (size_t i = 0; i < o.count; ++i) r[i] *= inv;
    }
  }
  return ncclSuccess;
}

}  // namespace

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
  if (!version) return ncclInvalidArgument;
  *version = kVersion;
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

// An id that says it is the shim's, with a tag from this process and time (so two communicators differ).
ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return ncclInvalidArgument;
  std::memset(id, 0, sizeof *id);
  std::memcpy(id->internal, kMagic, sizeof kMagic);
  static unsigned long long counter = 0;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const unsigned long long tag = (static_cast<unsigned long long>(getpid()) << 40) ^
                                 static_cast<unsigned long long>(ts.tv_nsec) ^ (++counter << 32);
  std::memcpy(id->internal + sizeof kMagic, &tag, sizeof tag);
  return ncclSuccess;
}

// Collective, like NCCL's: with more than one rank every rank's id must be rank 0's (checked over MPI, which is how
// a forgotten broadcast of the id shows) and the world must be MPI_COMM_WORLD with the same ranks.
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  if (!comm || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  if (std::memcmp(id.internal, kMagic, sizeof kMagic) != 0) {
    explain("ncclCommInitRank", "the unique id was not made by this shim's ncclGetUniqueId (not broadcast from rank "
                                "0?)");
    return ncclInvalidArgument;
  }
  unsigned long long tag = 0;
  std::memcpy(&tag, id.internal + sizeof kMagic, sizeof tag);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (nranks > 1) {
    if (!load_mpi()) {
      explain("ncclCommInitRank", g_mpi.error);
      return ncclSystemError;
    }
    int mpi_rank = -1, mpi_size = 0;
    g_mpi.Comm_rank(g_mpi.comm_world, &mpi_rank);
    g_mpi.Comm_size(g_mpi.comm_world, &mpi_size);
    if (mpi_size != nranks || mpi_rank != rank) {
      explain("ncclCommInitRank", "rank " + std::to_string(rank) + " of " + std::to_string(nranks) +
                                      " is not MPI_COMM_WORLD's rank " + std::to_string(mpi_rank) + " of " +
                                      std::to_string(mpi_size) + " (the shim serves the world's communicator only)");
      return ncclInvalidUsage;
    }
    unsigned long long root_tag = tag;
    g_mpi.Bcast(&root_tag, static_cast<int>(sizeof root_tag), g_mpi.type_byte, 0, g_mpi.comm_world);
    if (root_tag != tag) {
      explain("ncclCommInitRank", "rank " + std::to_string(rank) + " holds another unique id than rank 0");
      return ncclInvalidArgument;
    }
  }
  *comm = new ncclComm{rank, nranks, tag};
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclGroupStart() {
  std::lock_guard<std::mutex> lock(g_mutex);
  ++g_group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_group_depth == 0) {
    explain("ncclGroupEnd", "no ncclGroupStart to end");
    return ncclInvalidUsage;
  }
  if (--g_group_depth > 0) return ncclSuccess;
  std::vector<Op> ops;
  ops.swap(g_group);
  for (const Op& o : ops)
    if (ncclResult_t r = run(o)) return r;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  (void)stream;  // see the file's comment on stream order
  if (!comm || (count > 0 && (!sendbuff || !recvbuff))) return ncclInvalidArgument;
  if (datatype != ncclFloat32 && datatype != ncclFloat64) {
    explain("ncclAllReduce", "only ncclFloat32 and ncclFloat64 are served by the shim");
    return ncclInvalidArgument;
  }
  if (op != ncclSum && op != ncclAvg) {
    explain("ncclAllReduce", "only ncclSum and ncclAvg are served by the shim");
    return ncclInvalidArgument;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  const Op o{sendbuff, recvbuff, count, datatype, op, comm};
  if (g_group_depth > 0) {
    g_group.push_back(o);
    return ncclSuccess;
  }
  return run(o);
}

}  // extern "C"
