// emu_api.h: the host-side interface of the CUDA execution emulator (islkd_emu): its exception types and its few
// settings. Plain C++: tests and the CUDA shim include it without the kernel environment of cuda_emu.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace islkd_emu {

// Errors the emulator raises. Deliberately not islkd::Error: islkd_emu depends on nothing of the project.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};
// Bad launch configuration (zero or too large dims, too much shared memory): cudaErrorInvalidConfiguration on a GPU.
class LaunchConfigError : public Error {
 public:
  using Error::Error;
};
// A barrier (__syncthreads or a warp intrinsic) that not every thread it names can reach: a hang on a GPU.
class BarrierError : public Error {
 public:
  using Error::Error;
};

// Number of OS threads that run the blocks of one launch (the launching thread included). Default: the number of
// cores, or the environment variable ISLKD_EMU_THREADS. 1 runs every block on the launching thread.
void set_threads(int n);
int threads();

// The opt-in of cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): without it a
// launch may use at most 48 KiB of shared memory (static + dynamic), with it up to 227 KiB (sm_90).
void set_max_dynamic_shared_bytes(const void* kernel, size_t bytes);

// Counters since program start, for benchmarks and tests.
struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, switches = 0;
};
Stats stats();

}  // namespace islkd_emu
