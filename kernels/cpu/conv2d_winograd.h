// Winograd F(2x2, 3x3) forward convolution on nChw8c / nChw16c activations (kernels/cpu/conv2d_winograd.cpp),
// used by conv2d_forward_blocked (inference) and the training convolutions when winograd_applicable.
#pragma once
#include <cstdint>

#include "kernels/common/shapes.h"

namespace islkd::cpu {

// Below this many channels (in or out) the direct oneDNN kernel is faster: the 16 GEMMs are too thin and the
// transformed tiles cost more memory traffic than the multiplications saved (bench/kernels_bench, Winograd cases).
constexpr int64_t kWinogradMinChannels = 64;
// Transformed tiles (V and M) of one chunk, in bytes: sized to stay in the cache between the transforms and the GEMMs.
constexpr int64_t kWinogradChunkBytes = 2 << 20;

// groups 1, 3x3, stride 1, pad 1, C and K multiples of 16 (so either block fits) and >= kWinogradMinChannels;
// ISLKD_WINOGRAD=0 disables.
bool winograd_applicable(const Conv2dShape& s);
// x, y (and residual) nChw<block>c, block 8 or 16 (else an error naming the layout); w plain KCRS; bias, residual
// nullable. y = relu?(conv(x, w) + bias + residual).
void conv2d_forward_winograd_blocked(const Conv2dShape& s, int64_t block, const float* x, const float* w,
                                     const float* bias, const float* residual, bool relu, float* y);

}  // namespace islkd::cpu
