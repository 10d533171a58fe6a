// fiber.h: the user-space context switch the emulator runs CUDA threads on (one fiber per thread of a block).
// x86-64 uses a hand-written switch (no signal-mask syscall, unlike swapcontext); other targets use ucontext.
#pragma once
#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace islkd_emu::fiber {

struct Context {
#if defined(__x86_64__)
  void* sp = nullptr;  // saved stack pointer; the callee-saved registers are on the stack
#else
  ucontext_t uc;
#endif
};

// Prepares `ctx` so that switching to it runs entry(arg) on the stack [stack_lo, stack_lo + size).
// entry must never return: it ends by switching away for good.
void make(Context& ctx, char* stack_lo, size_t size, void (*entry)(void*), void* arg);

// Saves the current context in `from` and continues `to`.
void swap(Context& from, Context& to);

}  // namespace islkd_emu::fiber
