// runtime.cpp: the emulator's scheduler. A launch runs every block; the threads of a block are fibers on one OS
// thread, run until they block (barrier, warp intrinsic) or return, so code between barriers interleaves as on
// a GPU. Blocks are spread over a few OS threads. Deadlocks (a barrier some thread cannot reach) are reported.
#include "kernels/emu/cuda_emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kernels/emu/fiber.h"

#if defined(__SANITIZE_ADDRESS__)
#define ISLKD_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ISLKD_EMU_ASAN 1
#endif
#endif
#if defined(ISLKD_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local uint3 blockDim;
thread_local uint3 gridDim;

namespace islkd_emu {
namespace detail {
namespace {

constexpr unsigned kMaxBlockThreads = 1024;
constexpr size_t kDefaultSharedLimit = 48 * 1024;  // per block without the cudaFuncSetAttribute opt-in
constexpr size_t kOptInSharedLimit = 227 * 1024;   // sm_90 maximum per block
constexpr unsigned char kUninitialisedShared = 0xff;  // reads before writes show up as NaN / -1

// ---- sanitizer annotations of fiber switches ---------------------------------------------------------------------
inline void asan_start_switch(void** fake_stack, const void* bottom, size_t size) {
#if defined(ISLKD_EMU_ASAN)
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}
inline void asan_finish_switch(void* fake_stack, const void** bottom_old, size_t* size_old) {
#if defined(ISLKD_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
#else
  (void)fake_stack, (void)bottom_old, (void)size_old;
#endif
}

enum class State : uint8_t { Ready, Running, AtBarrier, AtWarp, Done };

struct Thread {
  fiber::Context ctx;
  char* stack_lo = nullptr;
  size_t stack_size = 0;
  void* fake_stack = nullptr;
  uint3 tid{};
  unsigned linear = 0;
  State state = State::Ready;
  bool fresh = true;  // not started yet: has no stack
  // where the thread waits (barrier or warp intrinsic), for matching and for messages
  const char* file = nullptr;
  int line = 0;
  // __syncthreads_count/and/or: op (-1 plain), predicate, result
  int bar_op = -1, pred = 0, bar_result = 0;
  // warp intrinsic
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int param = 0, width = 32;
};

struct StaticShared {
  const void* site;
  void* ptr;
};

struct Block {
  const KernelCall* call = nullptr;
  uint3 idx{};
  unsigned n = 0;
  Thread* threads = nullptr;
  std::vector<unsigned> ready;  // FIFO ring of thread indices; a thread is queued at most once
  unsigned ready_head = 0, ready_count = 0;
  unsigned done = 0;
  std::vector<unsigned> live;     // per warp: lanes that exist and have not returned
  std::vector<unsigned> waiting;  // per warp: lanes waiting in a warp intrinsic
  void* dynamic = nullptr;
  size_t dynamic_bytes = 0, static_bytes = 0, shared_limit = 0;
  std::vector<StaticShared> statics;
  std::exception_ptr error;  // from a thread (kernel exception, warp error): aborts the block
  // Odd blocks run their threads in reverse index order (a GPU promises no order), so a kernel that lacks a
  // barrier between a write and another thread's read gets wrong results in some block, whichever way it leans.
  bool reverse = false;

  unsigned order(unsigned k) const { return reverse ? n - 1 - k : k; }
  void push(unsigned i) {
    ready[(ready_head + ready_count++) % n] = i;
  }
  bool pop(unsigned& i) {
    if (ready_count == 0) return false;
    i = ready[ready_head];
    ready_head = (ready_head + 1) % n;
    --ready_count;
    return true;
  }
};

size_t default_stack_size() {
  if (const char* e = std::getenv("ISLKD_EMU_STACK_KB")) {
    const long kb = std::atol(e);
    if (kb >= 16) return static_cast<size_t>(kb) * 1024;
  }
#if defined(ISLKD_EMU_ASAN)
  return 256 * 1024;  // ASan frames carry redzones
#else
  return 64 * 1024;  // a GPU thread has 1 KiB of stack by default; host code (and exceptions) needs more
#endif
}

// Per OS thread: the fiber stacks (reused by every block this OS thread runs) and the running block.
struct Worker {
  fiber::Context scheduler;
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
  std::vector<Thread> threads;
  std::vector<char*> stacks;  // each: one guard page, then stack_size bytes
  std::vector<char*> free_stacks;
  size_t stack_size = default_stack_size();
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Block* block = nullptr;
  Thread* current = nullptr;
  uint64_t switches = 0;

  ~Worker() {
    for (char* s : stacks) munmap(s, page + stack_size);
  }
  // Returns the low end of a free stack (usable size stack_size), mapping a new one when none is free.
  char* take_stack() {
    if (free_stacks.empty()) {
      void* p = mmap(nullptr, page + stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
      if (p == MAP_FAILED) throw Error("islkd_emu: cannot map fiber stacks (mmap failed)");
      mprotect(p, page, PROT_NONE);  // a fiber that overflows its stack faults instead of corrupting a neighbour
      stacks.push_back(static_cast<char*>(p));
      free_stacks.push_back(static_cast<char*>(p) + page);
    }
    char* s = free_stacks.back();
    free_stacks.pop_back();
    return s;
  }
  // Stagger the stack tops: equally aligned tops would all compete for the same few cache sets.
  size_t usable(const char* lo) const {
    return stack_size - (reinterpret_cast<uintptr_t>(lo) / (page + stack_size) * 7 % 64) * 64;
  }
};

thread_local std::unique_ptr<Worker> t_worker;

Worker& this_worker() {
  if (!t_worker) t_worker = std::make_unique<Worker>();
  return *t_worker;
}

std::string dims(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
std::string site(const char* file, int line) {
  std::string f = file ? file : "?";
  const size_t slash = f.find_last_of('/');
  if (slash != std::string::npos) f = f.substr(slash + 1);
  return f + ":" + std::to_string(line);
}
std::string where(const Block& b) {
  return "islkd_emu: kernel '" + std::string(b.call->name) + "' block " + dims(b.idx) + ": ";
}
const char* op_name(WarpOp op) {
  static const char* names[] = {"__syncwarp",     "__shfl_sync",        "__shfl_up_sync",    "__shfl_down_sync",
                                 "__shfl_xor_sync", "__ballot_sync",      "__all_sync",        "__any_sync",
                                 "__match_any_sync", "__match_all_sync",  "__reduce_add_sync", "__reduce_min_sync",
                                 "__reduce_max_sync", "__reduce_min_sync", "__reduce_max_sync", "__reduce_and_sync",
                                 "__reduce_or_sync", "__reduce_xor_sync"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<size_t>(WarpOp::Count));
  return names[static_cast<int>(op)];
}
std::string describe_wait(const Thread& t) {
  switch (t.state) {
    case State::AtBarrier:
      return "waits at __syncthreads() at " + site(t.file, t.line);
    case State::AtWarp: {
      char m[16];
      std::snprintf(m, sizeof m, "0x%08x", t.mask);
      return std::string("waits in ") + op_name(t.op) + "(mask " + m + ") at " + site(t.file, t.line);
    }
    case State::Done:
      return "returned";
    default:
      return "is runnable";
  }
}
bool same_site(const Thread& a, const Thread& b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

[[noreturn]] void fiber_main(void* arg);

void start_thread(Worker& w, Block& b, unsigned i, dim3 bdim) {
  (void)w;
  Thread& t = b.threads[i];
  t.tid = uint3{i % bdim.x, (i / bdim.x) % bdim.y, i / (bdim.x * bdim.y)};
  t.linear = i;
  t.state = State::Ready;
  t.fresh = true;
  t.stack_lo = nullptr;
  t.stack_size = w.stack_size;
  b.push(i);
}

void resume(Worker& w, Thread& t) {
  if (t.fresh) {
    t.fresh = false;
    t.stack_lo = w.take_stack();
    fiber::make(t.ctx, t.stack_lo, w.usable(t.stack_lo), &fiber_main, &t);
  }
  w.current = &t;
  threadIdx = t.tid;
  t.state = State::Running;
  ++w.switches;
  asan_start_switch(&w.scheduler_fake_stack, t.stack_lo, t.stack_size);
  fiber::swap(w.scheduler, t.ctx);
  asan_finish_switch(w.scheduler_fake_stack, nullptr, nullptr);
  w.current = nullptr;
}

// Called by the running fiber (its state already says why it stops); returns when the scheduler resumes it.
void suspend(Worker& w, Thread& t) {
  asan_start_switch(&t.fake_stack, w.scheduler_stack_bottom, w.scheduler_stack_size);
  fiber::swap(t.ctx, w.scheduler);
  asan_finish_switch(t.fake_stack, nullptr, nullptr);
}

void on_thread_exit(Block& b, const Thread& t);

// A fiber runs its thread and then, while the next queued thread has not started, that one too on the same stack:
// a block without barriers costs one switch instead of two per thread. The order is the scheduler's.
void fiber_main(void* arg) {
  Worker& w = *t_worker;
  Block& b = *w.block;
  Thread* t = static_cast<Thread*>(arg);
  char* const stack = t->stack_lo;
  asan_finish_switch(nullptr, &w.scheduler_stack_bottom, &w.scheduler_stack_size);
  for (;;) {
    try {
      b.call->invoke(b.call->closure);
      t->state = State::Done;
      ++b.done;
      on_thread_exit(b, *t);
    } catch (...) {
      t->state = State::Done;
      b.error = std::current_exception();
      break;
    }
    if (b.ready_count == 0 || !b.threads[b.ready[b.ready_head]].fresh) break;
    unsigned next;
    b.pop(next);
    t = &b.threads[next];
    t->fresh = false;
    t->stack_lo = stack;
    t->state = State::Running;
    w.current = t;
    threadIdx = t->tid;
  }
  w.free_stacks.push_back(stack);  // nothing runs on it after the switch below
  asan_start_switch(nullptr, w.scheduler_stack_bottom, w.scheduler_stack_size);  // this fiber is finished
  fiber::Context dead;
  fiber::swap(dead, w.scheduler);
  __builtin_unreachable();
}

// ---- warp intrinsics ---------------------------------------------------------------------------------------------
uint64_t lane_result(const Block& b, unsigned base, unsigned part, unsigned lane) {
  const Thread& t = b.threads[base + lane];
  auto value_of = [&](unsigned src) { return (src < 32 && (part >> src & 1u)) ? b.threads[base + src].value : t.value; };
  const unsigned w = static_cast<unsigned>(t.width);
  const unsigned seg = lane & ~(w - 1), sub = lane & (w - 1);
  const unsigned p = static_cast<unsigned>(t.param);
  auto fold = [&](auto f, uint64_t init) {
    uint64_t acc = init;
    for (unsigned l = 0; l < 32; ++l)
      if (part >> l & 1u) acc = f(acc, b.threads[base + l].value);
    return acc;
  };
  switch (t.op) {
    case WarpOp::Sync:
      return 0;
    case WarpOp::Shfl:
      return value_of(seg + (p & (w - 1)));
    case WarpOp::ShflUp:
      return value_of(sub >= p ? lane - p : lane);
    case WarpOp::ShflDown:
      return value_of(p < w && sub + p < w ? lane + p : lane);
    case WarpOp::ShflXor: {
      const unsigned j = lane ^ p;
      return value_of(j <= seg + w - 1 ? j : lane);  // CUDA: later groups are out of reach, earlier ones are not
    }
    case WarpOp::Ballot:
    case WarpOp::All:
    case WarpOp::Any: {
      unsigned bits = 0;
      for (unsigned l = 0; l < 32; ++l)
        if ((part >> l & 1u) && b.threads[base + l].value) bits |= 1u << l;
      if (t.op == WarpOp::Ballot) return bits;
      return t.op == WarpOp::All ? bits == part : bits != 0;
    }
    case WarpOp::MatchAny:
    case WarpOp::MatchAll: {
      unsigned same = 0;
      for (unsigned l = 0; l < 32; ++l)
        if ((part >> l & 1u) && b.threads[base + l].value == t.value) same |= 1u << l;
      if (t.op == WarpOp::MatchAny) return same;
      return same == part ? part : 0;
    }
    case WarpOp::ReduceAddU:
      return static_cast<uint32_t>(fold([](uint64_t a, uint64_t v) { return a + v; }, 0));
    case WarpOp::ReduceMinU:
      return fold([](uint64_t a, uint64_t v) { return std::min(a, v & 0xffffffffu); }, 0xffffffffu);
    case WarpOp::ReduceMaxU:
      return fold([](uint64_t a, uint64_t v) { return std::max(a, v & 0xffffffffu); }, 0);
    case WarpOp::ReduceMinI:
    case WarpOp::ReduceMaxI: {
      const bool is_min = t.op == WarpOp::ReduceMinI;
      int32_t acc = is_min ? INT32_MAX : INT32_MIN;
      for (unsigned l = 0; l < 32; ++l) {
        if (!(part >> l & 1u)) continue;
        const auto v = static_cast<int32_t>(static_cast<uint32_t>(b.threads[base + l].value));
        acc = is_min ? std::min(acc, v) : std::max(acc, v);
      }
      return static_cast<uint32_t>(acc);
    }
    case WarpOp::ReduceAnd:
      return fold([](uint64_t a, uint64_t v) { return a & v; }, 0xffffffffu);
    case WarpOp::ReduceOr:
      return fold([](uint64_t a, uint64_t v) { return a | v; }, 0);
    case WarpOp::ReduceXor:
      return fold([](uint64_t a, uint64_t v) { return a ^ v; }, 0);
    case WarpOp::Count:
      break;
  }
  return 0;
}

// If every live lane named by lane `first`'s mask waits at a warp intrinsic with the same mask, performs the
// exchange and makes them runnable (except `running`, the arriving lane, which just continues).
bool try_complete_warp(Block& b, unsigned first, const Thread* running) {
  const Thread& t = b.threads[first];
  const unsigned warp = first / 32, base = warp * 32;
  const unsigned part = t.mask & b.live[warp];
  for (unsigned l = 0; l < 32; ++l) {
    if (!(part >> l & 1u)) continue;
    const Thread& o = b.threads[base + l];
    if (o.state != State::AtWarp || (o.mask & b.live[warp]) != part) return false;
  }
  for (unsigned l = 0; l < 32; ++l) {
    if (!(part >> l & 1u)) continue;
    const Thread& o = b.threads[base + l];
    if (o.op != t.op)
      throw BarrierError(where(b) + "warp barrier mismatch: lane " + std::to_string(first % 32) + " of warp " +
                         std::to_string(warp) + " " + describe_wait(t) + " while lane " + std::to_string(l) + " " +
                         describe_wait(o));
  }
  uint64_t results[32];
  for (unsigned l = 0; l < 32; ++l)
    if (part >> l & 1u) results[l] = lane_result(b, base, part, l);
  for (unsigned k = 0; k < 32; ++k) {
    const unsigned l = b.reverse ? 31 - k : k;
    if (!(part >> l & 1u)) continue;
    Thread& o = b.threads[base + l];
    o.result = results[l];
    b.waiting[warp] &= ~(1u << l);
    if (&o == running) {
      o.state = State::Running;
    } else {
      o.state = State::Ready;
      b.push(base + l);
    }
  }
  return true;
}

// A lane returned: warp intrinsics waiting only for it can now complete (exited lanes do not take part).
void on_thread_exit(Block& b, const Thread& t) {
  const unsigned warp = t.linear / 32;
  b.live[warp] &= ~(1u << (t.linear % 32));
  for (unsigned l = 0; l < 32 && b.waiting[warp]; ++l)
    if (b.waiting[warp] >> l & 1u) try_complete_warp(b, warp * 32 + l, nullptr);
}

// Nothing is runnable and some threads have not returned: either every one of them waits at the same
// __syncthreads() (release them), or the block is deadlocked.
void resolve_stall(Block& b) {
  const Thread* first_barrier = nullptr;
  const Thread* first_exited = nullptr;
  for (unsigned i = 0; i < b.n; ++i) {
    const Thread& t = b.threads[i];
    if (t.state == State::AtWarp) {
      // Report which participant cannot arrive.
      const unsigned warp = i / 32, base = warp * 32, part = t.mask & b.live[warp];
      std::string other;
      for (unsigned l = 0; l < 32 && other.empty(); ++l) {
        const Thread& o = b.threads[base + l];
        if ((part >> l & 1u) && (o.state != State::AtWarp || (o.mask & b.live[warp]) != part))
          other = "lane " + std::to_string(l) + " " + describe_wait(o);
      }
      throw BarrierError(where(b) + "warp barrier deadlock: lane " + std::to_string(i % 32) + " of warp " +
                         std::to_string(warp) + " (thread " + dims(t.tid) + ") " + describe_wait(t) + ", but " +
                         other);
    }
    if (t.state == State::AtBarrier && !first_barrier) first_barrier = &t;
    if (t.state == State::Done && !first_exited) first_exited = &t;
  }
  if (!first_barrier) throw Error(where(b) + "internal scheduler error: stalled without waiting threads");
  unsigned waiting = 0;
  for (unsigned i = 0; i < b.n; ++i) {
    const Thread& t = b.threads[i];
    if (t.state != State::AtBarrier) continue;
    ++waiting;
    if (!same_site(t, *first_barrier) || t.bar_op != first_barrier->bar_op)
      throw BarrierError(where(b) + "barrier deadlock: threads wait at different barriers: thread " +
                         dims(first_barrier->tid) + " " + describe_wait(*first_barrier) + ", thread " +
                         dims(t.tid) + " " + describe_wait(t));
  }
  if (first_exited)
    throw BarrierError(where(b) + "barrier deadlock: " + std::to_string(waiting) + " threads wait at __syncthreads() at " +
                       site(first_barrier->file, first_barrier->line) + " but " + std::to_string(b.done) +
                       " returned without reaching it (e.g. thread " + dims(first_exited->tid) + ")");
  int count = 0, all = 1, any = 0;
  for (unsigned i = 0; i < b.n; ++i) {
    const int p = b.threads[i].pred != 0;
    count += p, all &= p, any |= p;
  }
  const int op = first_barrier->bar_op;
  const int result = op == 0 ? count : op == 1 ? all : any;
  for (unsigned k = 0; k < b.n; ++k) {
    const unsigned i = b.order(k);
    b.threads[i].bar_result = result;
    b.threads[i].state = State::Ready;
    b.push(i);
  }
}

void run_block(Worker& w, const KernelCall& call, uint64_t linear, uint3 idx, dim3 bdim, size_t dynamic_bytes,
               size_t limit) {
  Block b;
  b.call = &call;
  b.idx = idx;
  b.reverse = linear % 2 == 1;
  b.n = bdim.x * bdim.y * bdim.z;
  if (w.threads.size() < b.n) w.threads.resize(b.n);
  w.free_stacks.clear();  // every stack is free between blocks, also those of fibers an error abandoned
  for (char* s : w.stacks) w.free_stacks.push_back(s + w.page);
  b.threads = w.threads.data();
  b.ready.resize(b.n);
  b.live.assign((b.n + 31) / 32, 0);
  b.waiting.assign((b.n + 31) / 32, 0);
  for (unsigned i = 0; i < b.n; ++i) b.live[i / 32] |= 1u << (i % 32);
  b.shared_limit = limit;
  b.dynamic_bytes = dynamic_bytes;
  b.dynamic = std::malloc(dynamic_bytes);  // exact size: ASan reports any access past the launch's dynamic bytes
  if (!b.dynamic && dynamic_bytes) throw std::bad_alloc();
  std::memset(b.dynamic, kUninitialisedShared, dynamic_bytes);
  blockIdx = idx;

  struct Cleanup {
    Worker& w;
    Block& b;
    ~Cleanup() {
      std::free(b.dynamic);
      for (auto& s : b.statics) std::free(s.ptr);
#if defined(ISLKD_EMU_ASAN)
      // Fibers abandoned mid-kernel (error or deadlock) leave poisoned frames on stacks we reuse.
      for (unsigned i = 0; i < b.n; ++i)
        if (b.threads[i].stack_lo && b.threads[i].state != State::Done)
          __asan_unpoison_memory_region(b.threads[i].stack_lo, w.stack_size);
#endif
      w.block = nullptr;
      w.current = nullptr;
    }
  } cleanup{w, b};

  for (unsigned k = 0; k < b.n; ++k) start_thread(w, b, b.order(k), bdim);
  w.block = &b;
  for (;;) {
    unsigned i;
    while (b.pop(i)) {
      resume(w, b.threads[i]);
      if (b.error) std::rethrow_exception(b.error);
    }
    if (b.done == b.n) break;
    resolve_stall(b);
  }
}

// ---- launches ----------------------------------------------------------------------------------------------------
struct Job {
  const KernelCall* call;
  dim3 grid, block;
  size_t dynamic_bytes, limit;
  uint64_t total;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  uint64_t error_block = UINT64_MAX;
  std::exception_ptr error;
};

std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_threads_run{0}, g_switches{0};

void work(Job& j) {
  Worker& w = this_worker();
  const uint64_t switches_before = w.switches;
  const uint64_t gx = j.grid.x, gy = j.grid.y;
  gridDim = uint3{j.grid.x, j.grid.y, j.grid.z};
  blockDim = uint3{j.block.x, j.block.y, j.block.z};
  while (!j.failed.load(std::memory_order_relaxed)) {
    // Blocks are claimed in increasing order, so every block below a failing one runs: the error reported is
    // the lowest failing block's, whatever the timing.
    const uint64_t i = j.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= j.total) break;
    const uint3 idx{static_cast<unsigned>(i % gx), static_cast<unsigned>(i / gx % gy),
                    static_cast<unsigned>(i / (gx * gy))};
    try {
      run_block(w, *j.call, i, idx, j.block, j.dynamic_bytes, j.limit);
    } catch (...) {
      std::lock_guard<std::mutex> lock(j.error_mu);
      if (i < j.error_block) j.error_block = i, j.error = std::current_exception();
      j.failed = true;
    }
  }
  g_switches.fetch_add(w.switches - switches_before, std::memory_order_relaxed);
}

// OS threads that help the launching thread run blocks.
class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void run(Job& j, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(threads_.size()) < helpers) threads_.emplace_back([this] { loop(); });
      job_ = &j;
      slots_ = helpers;
      active_ = helpers;
      ++generation_;
    }
    cv_.notify_all();
    work(j);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return active_ == 0; });
    job_ = nullptr;
  }

 private:
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      Job* j;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || (generation_ != seen && slots_ > 0); });
        if (stop_) return;
        seen = generation_;
        --slots_;
        j = job_;
      }
      work(*j);
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> threads_;
  Job* job_ = nullptr;
  int slots_ = 0, active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

std::mutex g_launch_mu;  // one launch at a time (the pool serves one job)
std::mutex g_config_mu;
std::unordered_map<const void*, size_t> g_shared_opt_in;
std::atomic<int> g_threads{0};

Pool& pool() {
  static Pool p;
  return p;
}

int default_threads() {
  if (const char* e = std::getenv("ISLKD_EMU_THREADS")) {
    const int n = std::atoi(e);
    if (n >= 1) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

Thread& current_thread(const char* what) {
  Worker* w = t_worker.get();
  if (!w || !w->current) throw Error(std::string("islkd_emu: ") + what + " called outside an emulated kernel");
  return *w->current;
}

}  // namespace

void launch(const KernelCall& call, dim3 grid, dim3 block, size_t dynamic_bytes) {
  const std::string name = std::string("islkd_emu: kernel '") + call.name + "': ";
  if (t_worker && t_worker->current)
    throw Error(name + "launched from device code (dynamic parallelism is not supported)");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0)
    throw LaunchConfigError(name + "invalid launch configuration: grid " + dims(grid) + ", block " + dims(block) +
                            " has a zero dimension");
  if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    throw LaunchConfigError(name + "invalid launch configuration: grid " + dims(grid) +
                            " exceeds (2147483647, 65535, 65535)");
  if (block.x > 1024 || block.y > 1024 || block.z > 64 ||
      uint64_t{block.x} * block.y * block.z > kMaxBlockThreads)
    throw LaunchConfigError(name + "invalid launch configuration: block " + dims(block) +
                            " exceeds 1024 threads (or (1024, 1024, 64))");
  size_t limit = kDefaultSharedLimit;
  {
    std::lock_guard<std::mutex> lock(g_config_mu);
    auto it = g_shared_opt_in.find(call.kernel);
    if (it != g_shared_opt_in.end()) limit = std::max(limit, it->second);
  }
  if (dynamic_bytes > limit)
    throw LaunchConfigError(name + "invalid launch configuration: " + std::to_string(dynamic_bytes) +
                            " bytes of dynamic shared memory exceed the " + std::to_string(limit) +
                            "-byte limit (above 48 KiB needs cudaFuncSetAttribute's opt-in)");

  Job j;
  j.call = &call;
  j.grid = grid;
  j.block = block;
  j.dynamic_bytes = dynamic_bytes;
  j.limit = limit;
  j.total = uint64_t{grid.x} * grid.y * grid.z;
  const int helpers = static_cast<int>(std::min<uint64_t>(threads(), j.total)) - 1;
  if (helpers <= 0) {
    work(j);
  } else {
    std::lock_guard<std::mutex> lock(g_launch_mu);
    pool().run(j, helpers);
  }
  g_launches.fetch_add(1, std::memory_order_relaxed);
  g_blocks.fetch_add(j.total, std::memory_order_relaxed);
  g_threads_run.fetch_add(j.total * block.x * block.y * block.z, std::memory_order_relaxed);
  if (j.error) std::rethrow_exception(j.error);
}

void syncthreads(const char* file, int line) { syncthreads_reduce(-1, 0, file, line); }

int syncthreads_reduce(int op, int predicate, const char* file, int line) {
  Thread& t = current_thread("__syncthreads()");
  t.state = State::AtBarrier;
  t.file = file;
  t.line = line;
  t.bar_op = op;
  t.pred = predicate;
  suspend(*t_worker, t);
  return t.bar_result;
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int param, int width, const char* file,
                         int line) {
  Thread& t = current_thread(op_name(op));
  Worker& w = *t_worker;
  Block& b = *w.block;
  const unsigned lane = t.linear % 32;
  if (!(mask >> lane & 1u)) {
    char m[16];
    std::snprintf(m, sizeof m, "0x%08x", mask);
    throw Error(where(b) + op_name(op) + " at " + site(file, line) + ": lane " + std::to_string(lane) +
                " is not in its own mask " + m);
  }
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    throw Error(where(b) + op_name(op) + " at " + site(file, line) + ": width " + std::to_string(width) +
                " is not a power of two in [1, 32]");
  t.op = op;
  t.mask = mask;
  t.value = value;
  t.param = param;
  t.width = width;
  t.file = file;
  t.line = line;
  t.state = State::AtWarp;
  b.waiting[t.linear / 32] |= 1u << lane;
  if (!try_complete_warp(b, t.linear, &t)) suspend(w, t);
  return t.result;
}

unsigned activemask() {
  Thread& t = current_thread("__activemask()");
  return t_worker->block->live[t.linear / 32];
}

void* dynamic_shared() {
  current_thread("dynamic shared memory");
  return t_worker->block->dynamic;
}

void* static_shared(const void* site_key, size_t bytes, size_t align) {
  current_thread("__shared__ variable");
  Block& b = *t_worker->block;
  for (const auto& s : b.statics)
    if (s.site == site_key) return s.ptr;
  if (b.static_bytes + b.dynamic_bytes + bytes > b.shared_limit)
    throw LaunchConfigError(where(b) + "shared memory (" + std::to_string(b.static_bytes + bytes) + " static + " +
                            std::to_string(b.dynamic_bytes) + " dynamic bytes) exceeds the " +
                            std::to_string(b.shared_limit) + "-byte limit");
  void* p = align <= alignof(std::max_align_t) ? std::malloc(bytes)
                                              : std::aligned_alloc(align, (bytes + align - 1) / align * align);
  if (!p) throw std::bad_alloc();
  std::memset(p, kUninitialisedShared, bytes);
  b.statics.push_back({site_key, p});
  b.static_bytes += bytes;
  return p;
}

}  // namespace detail

void set_threads(int n) { detail::g_threads = std::max(1, n); }

int threads() {
  int n = detail::g_threads.load();
  if (n == 0) {
    n = detail::default_threads();
    detail::g_threads = n;
  }
  return n;
}

void set_max_dynamic_shared_bytes(const void* kernel, size_t bytes) {
  if (bytes > detail::kOptInSharedLimit)
    throw LaunchConfigError("islkd_emu: " + std::to_string(bytes) + " bytes of dynamic shared memory exceed the " +
                            std::to_string(detail::kOptInSharedLimit) + "-byte maximum per block");
  std::lock_guard<std::mutex> lock(detail::g_config_mu);
  detail::g_shared_opt_in[kernel] = bytes;
}

Stats stats() {
  Stats s;
  s.launches = detail::g_launches.load();
  s.blocks = detail::g_blocks.load();
  s.threads = detail::g_threads_run.load();
  s.switches = detail::g_switches.load();
  return s;
}

}  // namespace islkd_emu
