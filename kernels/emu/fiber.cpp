// fiber.cpp: the context switch behind kernels/emu/fiber.h. A switch costs a few nanoseconds, which is what
// makes a launch of 1000 blocks x 256 threads with barriers take milliseconds instead of seconds.
#include "kernels/emu/fiber.h"

#include <cstdint>

#if defined(__x86_64__)

extern "C" void islkd_emu_switch(void** save_sp, void* new_sp);
extern "C" void islkd_emu_trampoline();

// System V x86-64: rbx, rbp and r12-r15 are callee-saved; everything else is clobbered by the call anyway.
// MXCSR and the x87 control word are callee-saved too, but every fiber of an OS thread shares the thread's
// floating-point environment (a kernel cannot change it on a GPU either), so they are not switched.
asm(R"(
  .text
  .p2align 4
  .globl islkd_emu_switch
  .hidden islkd_emu_switch
  .type islkd_emu_switch,@function
islkd_emu_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size islkd_emu_switch, .-islkd_emu_switch

  .p2align 4
  .globl islkd_emu_trampoline
  .hidden islkd_emu_trampoline
  .type islkd_emu_trampoline,@function
islkd_emu_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size islkd_emu_trampoline, .-islkd_emu_trampoline
)");

namespace islkd_emu::fiber {

void make(Context& ctx, char* stack_lo, size_t size, void (*entry)(void*), void* arg) {
  // After islkd_emu_switch pops the frame below and returns into the trampoline, rsp == top (16-aligned), so
  // the trampoline's call leaves entry with the ABI's rsp % 16 == 8.
  auto top = (reinterpret_cast<uintptr_t>(stack_lo) + size) & ~uintptr_t{15};
  auto* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = reinterpret_cast<uint64_t>(&islkd_emu_trampoline);
  *--sp = 0;                                  // rbp: ends frame-pointer stack walks here
  *--sp = 0;                                  // rbx
  *--sp = reinterpret_cast<uint64_t>(arg);    // r12
  *--sp = reinterpret_cast<uint64_t>(entry);  // r13
  *--sp = 0;                                  // r14
  *--sp = 0;                                  // r15
  ctx.sp = sp;
}

void swap(Context& from, Context& to) { islkd_emu_switch(&from.sp, to.sp); }

}  // namespace islkd_emu::fiber

#else  // portable fallback

namespace islkd_emu::fiber {
namespace {
void uc_entry(unsigned hi_f, unsigned lo_f, unsigned hi_a, unsigned lo_a) {
  auto f = reinterpret_cast<void (*)(void*)>((uintptr_t{hi_f} << 32) | lo_f);
  auto a = reinterpret_cast<void*>((uintptr_t{hi_a} << 32) | lo_a);
  f(a);
}
}  // namespace

void make(Context& ctx, char* stack_lo, size_t size, void (*entry)(void*), void* arg) {
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack_lo;
  ctx.uc.uc_stack.ss_size = size;
  ctx.uc.uc_link = nullptr;
  const auto f = reinterpret_cast<uintptr_t>(entry);
  const auto a = reinterpret_cast<uintptr_t>(arg);
  makecontext(&ctx.uc, reinterpret_cast<void (*)()>(&uc_entry), 4, unsigned(uint64_t(f) >> 32), unsigned(f),
              unsigned(uint64_t(a) >> 32), unsigned(a));
}

void swap(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

}  // namespace islkd_emu::fiber

#endif
