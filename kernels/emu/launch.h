// launch.h: the two macros every .cu file of the project uses so that one source builds under nvcc and runs under
// the CUDA execution emulator (which defines them itself in kernels/emu/cuda_emu.h). See kernels/README.md.
#pragma once

#if !defined(ISLKD_EMU)
// kernel<<<grid, block, shared_bytes, stream>>>(args...); check the launch with cudaGetLastError() as usual.
#define ISLKD_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  kernel<<<grid, block, shared_bytes, stream>>>(__VA_ARGS__)
// Dynamic shared memory of the launch as `type* name`. One untyped extern array for every kernel, so kernels
// (and template instantiations) that view it as different types do not clash.
#define ISLKD_DYNAMIC_SHARED(type, name)                                  \
  extern __shared__ __align__(16) unsigned char islkd_dynamic_shared_[]; \
  type* name = reinterpret_cast<type*>(islkd_dynamic_shared_)
#endif
