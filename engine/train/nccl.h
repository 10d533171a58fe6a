// NCCL for GPU gradients (issue 16, docs/distributed.md): one NCCL communicator over the MPI world, its unique id
// made by rank 0 and broadcast through the dist::Communicator, as llm.c does. libnccl.so.2 is loaded at run time
// (dlopen, like libmpi): no app links NCCL, and an app without it still starts and trains (over MPI).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/train/dist.h"

namespace islkd::dist {

// The library dlopen'd: $ISLKD_LIBNCCL when set (another NCCL, or the emulator's shim
// libislkd_nccl_shim.so), else libnccl.so.2 from the loader's search path.
std::string nccl_library_name();
// True when ISLKD_LIBNCCL names the library (the emulated CUDA backend uses NCCL only then: the system's real
// libnccl cannot read the emulator's host-memory "device" buffers).
bool nccl_library_named();

class Nccl {
 public:
  // Loads the library (once per process), checks its functions, and makes the communicator of `world`'s ranks on
  // this process's current CUDA device (a collective: every rank calls it, in the same order as its other
  // collectives). Throws an islkd::Error of one line naming the library and the fix when it cannot be loaded.
  static std::unique_ptr<Nccl> create(Communicator& world);
  // Loads the library (once per process; not collective): false with the reason, one line, in *why when it cannot
  // be loaded or lacks a function (nothing stays loaded then), or when another file is loaded already.
  static bool load(std::string* why);
  ~Nccl();
  Nccl(const Nccl&) = delete;
  Nccl& operator=(const Nccl&) = delete;

  // Sums every buffer over the ranks in place (ncclAllReduce, float, ncclSum), all of them in one
  // ncclGroupStart/End, queued on `stream` (a cudaStream_t): the call returns once they are queued.
  struct Buffer {
    float* data;  // device memory
    int64_t count;
  };
  void allreduce_sum(const std::vector<Buffer>& buffers, void* stream);

  int version() const { return version_; }  // ncclGetVersion: 22809 for 2.28.9
  std::string version_text() const;         // "2.28.9"
  const std::string& library() const { return library_; }

 private:
  Nccl() = default;
  void* comm_ = nullptr;  // ncclComm_t
  int version_ = 0;
  std::string library_;
};

}  // namespace islkd::dist
