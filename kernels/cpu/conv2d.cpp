// CPU 2-D convolution (forward, backward-data, backward-weights) through oneDNN 2.6's primitives.
//
// The caller's tensors are plain NCHW activations and KCRS weights (goihw when grouped: the same bytes).
// Creating a oneDNN primitive costs far more than running a small one, so each (shape, pass) gets a Plan once:
// the primitive, the layouts it wants, and the reorders between those and the caller's plain layouts. Plans live
// in a process-wide map behind a mutex and are never evicted (a model has a few dozen conv shapes).
// Execution uses a user-managed scratchpad and reorder buffers from the calling thread's arena, and that
// thread's stream, so one Plan can run on several threads at once.
//
// Layout choice, measured on 2 AVX2 cores (3x3 conv 16->16 on 128x16x32x32, forward + backward-data +
// backward-weights, 2 threads): letting oneDNN pick blocked formats (format_tag::any -> nChw8c, jit:avx2) and
// reordering from/to plain NCHW around every call took ~20 ms; forcing plain nchw (oneDNN's im2col + GEMM path)
// took ~87 ms. The reorders are ~15% of the blocked path. kLetDnnlPickFormats switches between the two for
// re-measuring. Two entry points keep activations blocked between ops instead, so the reorders disappear:
// the inference forward (conv2d_forward_blocked, a frozen teacher's: its output stays in the primitive's layout
// and the next convolution reads it as is), and the *_nc8 training functions, whose caller-side activation
// layout is nChw8c (what jit:avx2 computes in, so user == inner and no reorder runs; on AVX-512 machines oneDNN
// prefers nChw16c and the plan reorders between the two).
#include <dnnl.hpp>
#include <omp.h>

#include <array>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/cpu_kernels.h"

namespace islkd::cpu {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DT = memory::data_type;

constexpr bool kLetDnnlPickFormats = true;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

enum class Pass : int64_t { Forward = 0, BackwardData = 1, BackwardWeights = 2 };

// One argument of a primitive: the caller's plain layout, the layout the primitive wants, and the reorder
// between them (user -> inner for inputs, inner -> user for outputs); no reorder when they are equal.
struct Slot {
  int arg = 0;
  memory::desc user, inner;
  bool output = false;
  std::optional<dnnl::reorder> convert;
};

struct Plan {
  dnnl::primitive prim;
  std::vector<Slot> slots;  // in the order the run_plan() pointers are given
  memory::desc scratch;
};

struct Mds {
  memory::desc x, w, b, y;
  memory::dims strides, pad;
};

// The caller's activation layouts of one call: plain NCHW, or nChw8c (training with blocked activations).
struct ActLayouts {
  bool x_nc8 = false, y_nc8 = false;
  int64_t key() const { return int64_t(x_nc8) * 2 + int64_t(y_nc8); }
};

Mds plain_mds(const Conv2dShape& s, ActLayouts a = {}) {
  Mds m;
  m.x = memory::desc({s.N, s.C, s.H, s.W}, DT::f32, a.x_nc8 ? Tag::nChw8c : Tag::nchw);
  m.y = memory::desc({s.N, s.K, s.OH(), s.OW()}, DT::f32, a.y_nc8 ? Tag::nChw8c : Tag::nchw);
  if (s.groups == 1)
    m.w = memory::desc({s.K, s.C, s.R, s.S}, DT::f32, Tag::oihw);
  else
    m.w = memory::desc({s.groups, s.K / s.groups, s.C / s.groups, s.R, s.S}, DT::f32, Tag::goihw);
  m.b = memory::desc({s.K}, DT::f32, Tag::x);
  m.strides = {s.stride, s.stride};
  m.pad = {s.pad, s.pad};
  return m;
}

// The descriptors handed to oneDNN's op descriptors: plain, or `any` so it picks its preferred blocking.
Mds query_mds(const Mds& p) {
  if (!kLetDnnlPickFormats) return p;
  Mds q = p;
  q.x = memory::desc(p.x.dims(), DT::f32, Tag::any);
  q.y = memory::desc(p.y.dims(), DT::f32, Tag::any);
  q.w = memory::desc(p.w.dims(), DT::f32, Tag::any);
  return q;
}

Slot make_slot(int arg, const memory::desc& user, const memory::desc& inner, bool output) {
  Slot sl;
  sl.arg = arg;
  sl.user = user;
  sl.inner = inner;
  sl.output = output;
  if (user != inner) {
    auto& e = cpu_engine();
    sl.convert = output ? dnnl::reorder(dnnl::reorder::primitive_desc(e, inner, e, user))
                        : dnnl::reorder(dnnl::reorder::primitive_desc(e, user, e, inner));
  }
  return sl;
}

dnnl::primitive_attr scratch_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Conv2dShape& s, bool bias, bool relu,
                                                     dnnl::prop_kind kind,
                                                     const memory::desc* residual = nullptr) {
  Mds p = plain_mds(s), q = query_mds(p);
  auto d = bias ? dnnl::convolution_forward::desc(kind, dnnl::algorithm::convolution_direct, q.x, q.w, p.b, q.y,
                                                  q.strides, q.pad, q.pad)
                : dnnl::convolution_forward::desc(kind, dnnl::algorithm::convolution_direct, q.x, q.w, q.y,
                                                  q.strides, q.pad, q.pad);
  dnnl::primitive_attr attr = scratch_attr();
  dnnl::post_ops po;
  // dst = conv + residual (a separate tensor in dst's layout, read by the kernel: no copy into dst first).
  if (residual) po.append_binary(dnnl::algorithm::binary_add, *residual);
  if (relu) po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  if (residual || relu) attr.set_post_ops(po);
  return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
}

std::shared_ptr<Plan> build_plan(const Conv2dShape& s, Pass pass, bool bias, bool relu, ActLayouts act) {
  Mds p = plain_mds(s, act), q = query_mds(plain_mds(s));
  auto plan = std::make_shared<Plan>();
  if (pass == Pass::Forward) {
    auto pd = forward_pd(s, bias, relu, dnnl::prop_kind::forward_inference);
    plan->prim = dnnl::convolution_forward(pd);
    plan->slots.push_back(make_slot(DNNL_ARG_SRC, p.x, pd.src_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_WEIGHTS, p.w, pd.weights_desc(), false));
    if (bias) plan->slots.push_back(make_slot(DNNL_ARG_BIAS, p.b, pd.bias_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_DST, p.y, pd.dst_desc(), true));
    plan->scratch = pd.scratchpad_desc();
  } else if (pass == Pass::BackwardData) {
    auto hint = forward_pd(s, false, false, dnnl::prop_kind::forward_training);
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, q.x, q.w, q.y, q.strides, q.pad,
                                            q.pad);
    dnnl::convolution_backward_data::primitive_desc pd(d, scratch_attr(), cpu_engine(), hint);
    plan->prim = dnnl::convolution_backward_data(pd);
    plan->slots.push_back(make_slot(DNNL_ARG_DIFF_DST, p.y, pd.diff_dst_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_WEIGHTS, p.w, pd.weights_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_DIFF_SRC, p.x, pd.diff_src_desc(), true));
    plan->scratch = pd.scratchpad_desc();
  } else {
    auto hint = forward_pd(s, bias, false, dnnl::prop_kind::forward_training);
    auto d = bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, q.x, q.w, p.b, q.y,
                                                             q.strides, q.pad, q.pad)
                  : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, q.x, q.w, q.y,
                                                             q.strides, q.pad, q.pad);
    dnnl::convolution_backward_weights::primitive_desc pd(d, scratch_attr(), cpu_engine(), hint);
    plan->prim = dnnl::convolution_backward_weights(pd);
    plan->slots.push_back(make_slot(DNNL_ARG_SRC, p.x, pd.src_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_DIFF_DST, p.y, pd.diff_dst_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_DIFF_WEIGHTS, p.w, pd.diff_weights_desc(), true));
    if (bias) plan->slots.push_back(make_slot(DNNL_ARG_DIFF_BIAS, p.b, pd.diff_bias_desc(), true));
    plan->scratch = pd.scratchpad_desc();
  }
  return plan;
}

std::string shape_text(const Conv2dShape& s) {
  return detail::concat("x [", s.N, ", ", s.C, ", ", s.H, ", ", s.W, "], w [", s.K, ", ", s.C / s.groups, ", ", s.R,
                        ", ", s.S, "], stride ", s.stride, ", pad ", s.pad, ", groups ", s.groups);
}

Plan& get_plan(const Conv2dShape& s, Pass pass, bool bias, bool relu, ActLayouts act) {
  using Key = std::array<int64_t, 15>;
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<Plan>> cache;
  // oneDNN sizes a primitive's work split for the thread count at creation: a different count needs a new plan.
  const Key key{s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.stride, s.pad, s.groups, static_cast<int64_t>(pass),
                bias, relu, num_threads(), act.key()};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  try {
    auto plan = build_plan(s, pass, bias, relu, act);
    return *cache.emplace(key, std::move(plan)).first->second;
  } catch (const dnnl::error& e) {
    ISLKD_FAIL("conv2d: oneDNN cannot create a primitive for ", shape_text(s), ": ", e.what());
  }
}

// Below this many multiply-adds a convolution runs on the calling thread alone: waking the OpenMP team costs
// more than the work (and under oversubscription, e.g. parallel test processes, far more).
constexpr double kParallelMinMacs = 1 << 18;
// Same for reorders (weights, small activations): below this many bytes they run on the calling thread.
constexpr size_t kParallelMinBytes = 1 << 18;

// Limits the calling thread's OpenMP team for one call; oneDNN reads the limit when it creates and runs plans.
class SingleThreadScope {
 public:
  explicit SingleThreadScope(bool on) : prev_(on ? omp_get_max_threads() : 0) {
    if (on) omp_set_num_threads(1);
  }
  ~SingleThreadScope() {
    if (prev_ > 0) omp_set_num_threads(prev_);
  }
  SingleThreadScope(const SingleThreadScope&) = delete;
  SingleThreadScope& operator=(const SingleThreadScope&) = delete;

 private:
  int prev_;
};

// Per-thread reusable buffers for reorder temporaries and the scratchpad: allocating them per call costs page
// faults on every call (measured: more than the reorders themselves). They grow to the largest request seen.
class ThreadArena {
 public:
  ~ThreadArena() {
    for (auto& b : bufs_) std::free(b.first);
  }
  void* get(size_t slot, size_t bytes) {
    if (bufs_.size() <= slot) bufs_.resize(slot + 1, {nullptr, 0});
    auto& b = bufs_[slot];
    if (b.second < bytes) {
      std::free(b.first);
      b.second = (bytes + 4095) / 4096 * 4096;
      b.first = std::aligned_alloc(64, b.second);
      ISLKD_CHECK(b.first, "conv2d: out of host memory allocating ", b.second, " bytes");
    }
    return b.first;
  }

 private:
  std::vector<std::pair<void*, size_t>> bufs_;
};

// Runs a plan on the caller's plain buffers (ptrs in slot order): reorders inputs in, executes, reorders
// outputs back. Temporaries come from the calling thread's arena, so concurrent calls never share them.
ThreadArena& thread_arena() {
  thread_local ThreadArena arena;
  return arena;
}
dnnl::stream& thread_stream() {
  thread_local dnnl::stream strm(cpu_engine());  // one engine for the process, one in-order stream per thread
  return strm;
}

void run_plan(const Plan& plan, const std::vector<void*>& ptrs) {
  ThreadArena& arena = thread_arena();
  auto& eng = cpu_engine();
  dnnl::stream& strm = thread_stream();
  std::unordered_map<int, memory> args;
  std::vector<std::pair<const Slot*, std::pair<memory, memory>>> pending_outputs;
  for (size_t i = 0; i < plan.slots.size(); ++i) {
    const Slot& sl = plan.slots[i];
    memory user(sl.user, eng, ptrs[i]);
    if (!sl.convert) {
      args.emplace(sl.arg, user);
      continue;
    }
    memory inner(sl.inner, eng, arena.get(i + 1, sl.inner.get_size()));
    if (sl.output) {
      pending_outputs.push_back({&sl, {inner, user}});
    } else {
      SingleThreadScope single(sl.user.get_size() < kParallelMinBytes);
      sl.convert->execute(strm, user, inner);
    }
    args.emplace(sl.arg, inner);
  }
  memory scratch(plan.scratch, eng, arena.get(0, plan.scratch.get_size()));
  args.emplace(DNNL_ARG_SCRATCHPAD, scratch);
  plan.prim.execute(strm, args);
  for (auto& [sl, mems] : pending_outputs) {
    SingleThreadScope single(sl->user.get_size() < kParallelMinBytes);
    sl->convert->execute(strm, mems.first, mems.second);
  }
  strm.wait();
}

void check_shape(const Conv2dShape& s) {
  ISLKD_CHECK(s.N > 0 && s.C > 0 && s.H > 0 && s.W > 0 && s.K > 0 && s.R > 0 && s.S > 0 && s.stride > 0 &&
                  s.pad >= 0 && s.groups > 0 && s.C % s.groups == 0 && s.K % s.groups == 0 && s.OH() > 0 &&
                  s.OW() > 0,
              "conv2d: invalid shape ", shape_text(s));
}

void run_checked(const Conv2dShape& s, Pass pass, bool bias, bool relu, const std::vector<void*>& ptrs,
                 ActLayouts act = {}) {
  check_shape(s);
  ISLKD_CHECK((!act.x_nc8 || (s.C % 8 == 0 && s.groups == 1)) && (!act.y_nc8 || (s.K % 8 == 0 && s.groups == 1)),
              "conv2d: nChw8c activations need channel counts divisible by 8 and groups == 1 (", shape_text(s), ")");
  const double macs = double(s.N) * double(s.K) * double(s.OH() * s.OW()) * double(s.C / s.groups * s.R * s.S);
  SingleThreadScope single(macs < kParallelMinMacs);
  Plan& plan = get_plan(s, pass, bias, relu, act);
  try {
    run_plan(plan, ptrs);
  } catch (const dnnl::error& e) {
    ISLKD_FAIL("conv2d: oneDNN failed to execute for ", shape_text(s), ": ", e.what());
  }
}

void* mut(const float* p) { return const_cast<float*>(p); }  // oneDNN memory objects take void* for inputs too

// ---- blocked inference forward ----
// The destination stays in the primitive's layout (no output reorder); the source is taken in whatever layout the
// previous layer left it, with a reorder only when that differs from what this primitive wants (the first conv's
// plain input, a layout change between shapes). Reorders from each source layout seen are cached in the plan.
struct BlockedPlan {
  dnnl::primitive prim;
  memory::desc src, wei_user, wei, dst, scratch;
  std::optional<dnnl::reorder> wei_convert;
  std::shared_ptr<const BlockedLayout> dst_layout;
  std::mutex mu;
  std::vector<std::pair<memory::desc, dnnl::reorder>> src_converts;
  const dnnl::reorder* src_convert(const memory::desc& from) {
    if (from == src) return nullptr;
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [d, r] : src_converts)
      if (d == from) return &r;
    auto& e = cpu_engine();
    src_converts.emplace_back(from, dnnl::reorder(dnnl::reorder::primitive_desc(e, from, e, src)));
    return &src_converts.back().second;  // a vector of few entries; references stay valid (see reserve below)
  }
};

}  // namespace

struct BlockedLayout {
  explicit BlockedLayout(const memory::desc& d) : md(d), block(nc8_block(d)) {}
  memory::desc md;
  int64_t block;  // 8 when md is nChw8c (no channel padding), else 0: decided once, read on every op

 private:
  static int64_t nc8_block(const memory::desc& d) {
    const memory::dims dims = d.dims();
    if (dims.size() != 4 || dims[1] % 8 != 0) return 0;
    return d == memory::desc(dims, DT::f32, Tag::nChw8c) ? 8 : 0;
  }
};

namespace {

BlockedPlan& get_blocked_plan(const Conv2dShape& s, bool bias, bool relu, bool residual) {
  using Key = std::array<int64_t, 14>;
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<BlockedPlan>> cache;
  const Key key{s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.stride, s.pad, s.groups, bias, relu, num_threads(), residual};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  try {
    auto pd = forward_pd(s, bias, relu, dnnl::prop_kind::forward_inference);
    if (residual) {
      // The residual comes in the layout the plain plan writes (what the previous block's output has); the plan
      // with the add must keep that output layout too.
      const memory::desc out = pd.dst_desc();
      pd = forward_pd(s, bias, relu, dnnl::prop_kind::forward_inference, &out);
      ISLKD_CHECK(pd.dst_desc() == out, "conv2d: the residual-add plan changed the output layout for ",
                  shape_text(s));
    }
    auto plan = std::make_unique<BlockedPlan>();
    plan->prim = dnnl::convolution_forward(pd);
    plan->src = pd.src_desc();
    plan->wei_user = plain_mds(s).w;
    plan->wei = pd.weights_desc();
    if (plan->wei != plan->wei_user) {
      auto& e = cpu_engine();
      plan->wei_convert = dnnl::reorder(dnnl::reorder::primitive_desc(e, plan->wei_user, e, plan->wei));
    }
    plan->dst = pd.dst_desc();
    plan->scratch = pd.scratchpad_desc();
    plan->dst_layout = std::make_shared<BlockedLayout>(plan->dst);
    plan->src_converts.reserve(16);
    return *cache.emplace(key, std::move(plan)).first->second;
  } catch (const dnnl::error& e) {
    ISLKD_FAIL("conv2d: oneDNN cannot create a primitive for ", shape_text(s), ": ", e.what());
  }
}

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                    bool fuse_relu) {
  std::vector<void*> ptrs{mut(x), mut(w)};
  if (bias) ptrs.push_back(mut(bias));
  ptrs.push_back(y);
  run_checked(s, Pass::Forward, bias != nullptr, fuse_relu, ptrs);
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  run_checked(s, Pass::BackwardData, false, false, {mut(dy), mut(w), dx});
}

void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  std::vector<void*> ptrs{mut(x), mut(dy), dw};
  if (dbias) ptrs.push_back(dbias);
  run_checked(s, Pass::BackwardWeights, dbias != nullptr, false, ptrs);
}

// Training on nChw8c: the forward and the backward-data of 3x3 stride-1 layers with enough channels run as
// Winograd (the backward-data is the forward convolution of dy with the filters transposed to [C][K] and rotated
// by 180 degrees); the backward-weights stays oneDNN's direct kernel.
void conv2d_forward_nc8(const Conv2dShape& s, bool x_nc8, const float* x, const float* w, const float* bias,
                        float* y) {
  if (x_nc8 && s.C % 8 == 0 && s.K % 8 == 0 && winograd_applicable(s)) {
    check_shape(s);
    conv2d_forward_winograd_nc8(s, x, w, bias, nullptr, false, y);
    return;
  }
  std::vector<void*> ptrs{mut(x), mut(w)};
  if (bias) ptrs.push_back(mut(bias));
  ptrs.push_back(y);
  run_checked(s, Pass::Forward, bias != nullptr, false, ptrs, {x_nc8, true});
}

void conv2d_backward_data_nc8(const Conv2dShape& s, const float* dy, const float* w, bool dx_nc8, float* dx) {
  Conv2dShape t = s;  // dx = conv(dy, w^T rotated): K input channels, C output channels
  t.C = s.K, t.K = s.C;
  if (dx_nc8 && s.C % 8 == 0 && s.K % 8 == 0 && winograd_applicable(t)) {
    check_shape(s);
    float* wt = static_cast<float*>(thread_arena().get(8, sizeof(float) * size_t(s.K * s.C * 9)));
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t c = 0; c < s.C; ++c)
        for (int r = 0; r < 9; ++r) wt[(c * s.K + k) * 9 + r] = w[(k * s.C + c) * 9 + (8 - r)];
    conv2d_forward_winograd_nc8(t, dy, wt, nullptr, nullptr, false, dx);
    return;
  }
  run_checked(s, Pass::BackwardData, false, false, {mut(dy), mut(w), dx}, {dx_nc8, true});
}

void conv2d_backward_weights_nc8(const Conv2dShape& s, bool x_nc8, const float* x, const float* dy, float* dw,
                                 float* dbias) {
  std::vector<void*> ptrs{mut(x), mut(dy), dw};
  if (dbias) ptrs.push_back(dbias);
  run_checked(s, Pass::BackwardWeights, dbias != nullptr, false, ptrs, {x_nc8, true});
}

std::shared_ptr<const BlockedLayout> nchw8c_layout(int64_t N, int64_t C, int64_t H, int64_t W) {
  ISLKD_CHECK(N > 0 && C > 0 && H > 0 && W > 0 && C % 8 == 0, "nchw8c_layout: needs positive dims and C % 8 == 0, "
              "got [", N, ", ", C, ", ", H, ", ", W, "]");
  return std::make_shared<BlockedLayout>(memory::desc({N, C, H, W}, DT::f32, Tag::nChw8c));
}

int64_t channel_block(const BlockedLayout& l) { return l.block; }

namespace {
// One activation reorder between a blocked layout and plain NCHW (either direction).
void reorder_activation(const char* what, const BlockedLayout& l, bool to_blocked, const float* src, float* dst) {
  const memory::dims d = l.md.dims();
  ISLKD_CHECK(d.size() == 4, what, ": expected a 4-d activation layout");
  const memory::desc plain(d, DT::f32, Tag::nchw);
  auto& eng = cpu_engine();
  try {
    memory from(to_blocked ? plain : l.md, eng, mut(src)), to(to_blocked ? l.md : plain, eng, dst);
    SingleThreadScope small(plain.get_size() < kParallelMinBytes);
    dnnl::reorder(from, to).execute(thread_stream(), from, to);
    thread_stream().wait();
  } catch (const dnnl::error& e) {
    ISLKD_FAIL(what, ": oneDNN reorder failed: ", e.what());
  }
}
}  // namespace

void plain_to_blocked(const BlockedLayout& l, const float* src, float* dst) {
  reorder_activation("plain_to_blocked", l, true, src, dst);
}

std::shared_ptr<const BlockedLayout> conv2d_forward_blocked_layout(const Conv2dShape& s, bool bias, bool fuse_relu) {
  check_shape(s);
  ISLKD_CHECK(s.groups == 1, "conv2d_forward_blocked: grouped convolutions are not supported (", shape_text(s), ")");
  return get_blocked_plan(s, bias, fuse_relu, false).dst_layout;
}

size_t blocked_bytes(const BlockedLayout& l) { return l.md.get_size(); }

bool same_blocked_layout(const BlockedLayout& a, const BlockedLayout& b) { return &a == &b || a.md == b.md; }

void conv2d_forward_blocked(const Conv2dShape& s, const BlockedLayout* x_layout, const float* x, const float* w,
                            const float* bias, float* y, bool fuse_relu, const float* residual) {
  check_shape(s);
  ISLKD_CHECK(s.groups == 1, "conv2d_forward_blocked: grouped convolutions are not supported (", shape_text(s), ")");
  const double macs = double(s.N) * double(s.K) * double(s.OH() * s.OW()) * double(s.C * s.R * s.S);
  SingleThreadScope single(macs < kParallelMinMacs);
  BlockedPlan& plan = get_blocked_plan(s, bias != nullptr, fuse_relu, residual != nullptr);
  const memory::desc x_md = x_layout ? x_layout->md : plain_mds(s).x;
  ISLKD_CHECK(x_md.dims() == plan.src.dims(), "conv2d_forward_blocked: input layout does not match ", shape_text(s));
  const memory::desc nc8_x(plan.src.dims(), DT::f32, Tag::nChw8c), nc8_y(plan.dst.dims(), DT::f32, Tag::nChw8c);
  const bool winograd = winograd_applicable(s) && plan.src == nc8_x && plan.dst == nc8_y;
  try {
    auto& eng = cpu_engine();
    dnnl::stream& strm = thread_stream();
    ThreadArena& arena = thread_arena();
    std::unordered_map<int, memory> args;
    memory x_mem(x_md, eng, mut(x));
    const void* src = x;
    if (const dnnl::reorder* r = plan.src_convert(x_md)) {
      memory inner(plan.src, eng, arena.get(1, plan.src.get_size()));
      SingleThreadScope small(x_md.get_size() < kParallelMinBytes);
      r->execute(strm, x_mem, inner);
      args.emplace(DNNL_ARG_SRC, inner);
      src = inner.get_data_handle();
    } else {
      args.emplace(DNNL_ARG_SRC, x_mem);
    }
    if (winograd) {
      strm.wait();
      conv2d_forward_winograd_nc8(s, static_cast<const float*>(src), w, bias, residual, fuse_relu, y);
      return;
    }
    memory w_mem(plan.wei_user, eng, mut(w));
    if (plan.wei_convert) {
      memory inner(plan.wei, eng, arena.get(2, plan.wei.get_size()));
      SingleThreadScope small(plan.wei_user.get_size() < kParallelMinBytes);
      plan.wei_convert->execute(strm, w_mem, inner);
      args.emplace(DNNL_ARG_WEIGHTS, inner);
    } else {
      args.emplace(DNNL_ARG_WEIGHTS, w_mem);
    }
    if (bias) args.emplace(DNNL_ARG_BIAS, memory(memory::desc({s.K}, DT::f32, Tag::x), eng, mut(bias)));
    args.emplace(DNNL_ARG_DST, memory(plan.dst, eng, y));
    if (residual)
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, memory(plan.dst, eng, mut(residual)));
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(plan.scratch, eng, arena.get(0, plan.scratch.get_size())));
    plan.prim.execute(strm, args);
    strm.wait();
  } catch (const dnnl::error& e) {
    ISLKD_FAIL("conv2d: oneDNN failed to execute for ", shape_text(s), ": ", e.what());
  }
}

void blocked_to_plain(const BlockedLayout& l, const float* src, float* dst) {
  reorder_activation("blocked_to_plain", l, false, src, dst);
}

}  // namespace islkd::cpu
