// Host entry points of the emulator's test kernels (tests/emu/*.cu). Plain C++ so both the tests and nvcc see it;
// pointers are host memory, which is what "device" memory is under the emulator.
#pragma once
#include <cstddef>

namespace emu_test {

// barrier_kernels.cu
void block_reduce_sum(const float* x, float* block_sums, int n, int block);     // tree reduction in __shared__
void reverse_in_block(const int* x, int* y, int n);                              // one block of n threads
void transpose(const float* in, float* out, int rows, int cols);                 // 32x32 tiles, 32x8 threads
void write_thread_ids(int* out, int grid_x, int grid_y, int block_x, int block_y, int block_z);
void syncthreads_predicates(const int* pred, int* count, int* all, int* any, int n);
void early_return_before_barrier(int* out, int n);   // deadlocks: threads >= n/2 return before __syncthreads
void two_different_barriers(int* out, int n);        // deadlocks: odd and even threads wait at different barriers
void throw_in_thread(int n, int thrower);            // thread `thrower` throws std::logic_error
void barrier_in_loop(const int* x, long long* out, int n, int rounds);
void missing_barrier(int* out, int grid, int block);  // racy: reads a neighbour's shared write without a barrier
void multiply_template(double* x, int n);            // ISLKD_LAUNCH((multiply_kernel<double, 3>), ...)
void launch_from_kernel();                           // a kernel that launches a kernel: not supported
void grid_stride_fill(int* out, int n, int grid, int block);
void launch_config(int grid, int block_x, int block_y, int block_z, size_t dynamic_bytes);
void opt_in_dynamic_shared(size_t bytes);

// warp_kernels.cu
void warp_reduce_down(const float* x, float* warp_sums, int n);      // __shfl_down_sync tree, one value per warp
void warp_reduce_xor(const int* x, int* out, int n);                 // butterfly: every lane gets the warp sum
void shuffle_patterns(const int* x, int* idx_out, int* up_out, int* down_out, int* xor_out, int width, int delta);
void ballot_any_all(const int* pred, unsigned* ballot, int* any, int* all, int n);
void syncwarp_neighbour(const int* x, int* y, int n);                // lanes read a neighbour's write after __syncwarp
void match_and_reduce(const int* x, unsigned* match_any, int* reduce_add, int* reduce_max, int n);
void shuffle_double_and_ll(const double* x, double* yd, long long* yl);
void warp_waits_for_block_barrier();                                 // deadlock: lane 0 at __syncthreads, others in a shuffle
void half_warp_shuffles(const int* x, int* out);                     // two disjoint masks in one warp
void ballot_after_early_exit(unsigned* out, int keep);               // lanes >= keep return before the ballot

// atomic_kernels.cu
void atomics_global(int* counter, unsigned* umax, int* imin, unsigned long long* big, float* fsum, int grid, int block);
void atomics_shared(const int* keys, int* histogram, int n, int bins);
void atomic_cas_lock(int* lock_word, int* value, int grid);
void atomic_exch_sub_inc(int* sub, unsigned* inc, unsigned* dec, int* exch_seen, int n);

// intrinsics_kernels.cu: x = {2, 0.5, NaN, inf}; f[0..12], i[0..9] as in the kernel
void intrinsics(const float* x, float* f, int* i);

// shared_kernels.cu
void dynamic_and_static_shared(const float* x, float* y, int n, int block);
void dynamic_shared_overrun(int n);        // writes one float past the dynamic shared memory of the launch
void static_shared_overrun(int n);         // writes one float past a static __shared__ array
void shared_is_per_block(int* out, int grid, int block);
void static_shared_too_large();            // 40 KiB static + 16 KiB dynamic > 48 KiB
// After a launch that fills shared memory, reads static and dynamic __shared__ before any write (32 per block).
void read_uninitialised_shared(float* static_out, int* static_int_out, float* dynamic_out, int grid);
void barrier_benchmark(float* out, int grid, int block);  // one barrier per block, used for timing
void elementwise_benchmark(const float* x, float* y, int n);  // no barrier, 256 threads per block

}  // namespace emu_test
