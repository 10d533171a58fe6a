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
// the inference forward (conv2d_forward_blocked, a frozen teacher's) and the *_cb training functions. Both keep
// activations in nChw<B>c with B = activation_block(): the channel block oneDNN's direct training convolution
// computes in on this machine, read from its primitive descriptor (8 with jit:avx2, 16 with jit:avx512_core),
// or the block forced by ISLKD_CPU_CHANNEL_BLOCK. Primitives are created with `any` layouts (or, for inference,
// with nChw<B>c asked for, falling back to `any` when oneDNN would answer with a reference kernel), so a forced
// block never lands on oneDNN's ref:any: the plan reorders at its boundary to what the jit kernel wants.
#include <dnnl.hpp>
#include <omp.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/cpu/blocked_layout.h"
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
  std::string impl;         // oneDNN's implementation name (jit:avx2, jit:avx512_core, ...)
  std::vector<Slot> slots;  // in the order the run_plan() pointers are given
  memory::desc scratch;
};

struct Mds {
  memory::desc x, w, b, y;
  memory::dims strides, pad;
};

// The caller's activation layouts of one call: plain NCHW, or nChw<B>c (training with blocked activations).
struct ActLayouts {
  bool x_blk = false, y_blk = false;
  int64_t block = 0;  // B when x_blk or y_blk
  int64_t key() const { return (int64_t(x_blk) * 2 + int64_t(y_blk)) * 64 + block; }
};

Mds plain_mds(const Conv2dShape& s, ActLayouts a = {}) {
  Mds m;
  m.x = memory::desc({s.N, s.C, s.H, s.W}, DT::f32, a.x_blk ? block_tag(a.block) : Tag::nchw);
  m.y = memory::desc({s.N, s.K, s.OH(), s.OW()}, DT::f32, a.y_blk ? block_tag(a.block) : Tag::nchw);
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
                                                     const memory::desc* residual = nullptr,
                                                     const memory::desc* dst = nullptr) {
  Mds p = plain_mds(s), q = query_mds(p);
  if (dst) q.y = *dst;
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

bool is_reference(const std::string& impl) { return impl.rfind("ref", 0) == 0; }

std::shared_ptr<Plan> build_plan(const Conv2dShape& s, Pass pass, bool bias, bool relu, ActLayouts act) {
  Mds p = plain_mds(s, act), q = query_mds(plain_mds(s));
  auto plan = std::make_shared<Plan>();
  if (pass == Pass::Forward) {
    // A blocked caller asks for its own layout first: with `any`, oneDNN 2.6 on AVX-512 picks brgconv's nhwc for
    // this forward, and the reorders nChw16c <-> nhwc around every call cost more than brgconv saves (measured:
    // 19 ms of a 265 ms resnet56->resnet20 step). A reference kernel in the forced layout falls back to `any`.
    std::optional<dnnl::convolution_forward::primitive_desc> forced;
    if (act.y_blk) {
      forced = forward_pd(s, bias, relu, dnnl::prop_kind::forward_inference, nullptr, &p.y);
      if (is_reference(forced->impl_info_str())) forced.reset();
    }
    auto pd = forced ? *forced : forward_pd(s, bias, relu, dnnl::prop_kind::forward_inference);
    plan->prim = dnnl::convolution_forward(pd);
    plan->slots.push_back(make_slot(DNNL_ARG_SRC, p.x, pd.src_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_WEIGHTS, p.w, pd.weights_desc(), false));
    if (bias) plan->slots.push_back(make_slot(DNNL_ARG_BIAS, p.b, pd.bias_desc(), false));
    plan->slots.push_back(make_slot(DNNL_ARG_DST, p.y, pd.dst_desc(), true));
    plan->scratch = pd.scratchpad_desc();
    plan->impl = pd.impl_info_str();
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
    plan->impl = pd.impl_info_str();
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
    plan->impl = pd.impl_info_str();
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
  static std::map<Key, std::shared_ptr<Plan>> cache;  // act.key() holds the block: 8 and 16 plans coexist
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
  ISLKD_CHECK((!act.x_blk || (s.C % act.block == 0 && s.groups == 1)) &&
                  (!act.y_blk || (s.K % act.block == 0 && s.groups == 1)),
              "conv2d: nChw", act.block, "c activations need channel counts divisible by ", act.block,
              " and groups == 1 (", shape_text(s), ")");
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
// The output stays in the activation layout nChw<B>c (no reorder to plain); the source is taken in whatever layout
// the previous layer left it, with a reorder only when that differs from what this primitive wants (the first
// conv's plain input). Reorders from each source layout seen are cached in the plan. When oneDNN computes in
// another layout than the one the output carries (a forced block: jit:avx512_core cannot write nChw8c with
// every post-op, jit:avx2 cannot write nChw16c at all), the primitive writes a scratch buffer in its own layout
// and a reorder moves it into the output; the residual takes the opposite way.
struct BlockedPlan {
  dnnl::primitive prim;
  std::string impl;
  memory::desc src, wei_user, wei, dst, out, scratch;  // dst: what the primitive writes; out: the output's layout
  std::optional<dnnl::reorder> wei_convert, dst_convert /* dst -> out */, res_convert /* out -> dst */;
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

memory::desc activation_md(int64_t N, int64_t C, int64_t H, int64_t W) {
  return memory::desc({N, C, H, W}, DT::f32, block_tag(activation_block()));
}

}  // namespace

int64_t parse_channel_block(const char* value) {
  if (!value || !*value) return 0;
  const std::string v(value);
  if (v == "8") return 8;
  if (v == "16") return 16;
  ISLKD_FAIL("ISLKD_CPU_CHANNEL_BLOCK=", v, ": the CPU backend has no kernels for the layout nChw", v,
             "c; supported: 8 (nChw8c), 16 (nChw16c), or unset (what oneDNN picks on this machine)");
}

int64_t native_activation_block() {
  static const int64_t block = [] {
    Conv2dShape s;  // a middle layer of a CIFAR ResNet: what oneDNN's direct training convolution computes in
    s.N = 32, s.C = 64, s.H = 16, s.W = 16, s.K = 64, s.R = 3, s.S = 3, s.stride = 1, s.pad = 1;
    try {
      return block_of(forward_pd(s, false, false, dnnl::prop_kind::forward_training).dst_desc());
    } catch (const dnnl::error& e) {
      ISLKD_FAIL("conv2d: oneDNN cannot create the convolution that sets the activation layout: ", e.what());
    }
  }();
  return block;
}

int64_t activation_block() {
  // Read once: tensors made with one block must not meet kernels that expect another within a process.
  static const int64_t block = [] {
    const int64_t forced = parse_channel_block(std::getenv("ISLKD_CPU_CHANNEL_BLOCK"));
    if (forced) return forced;
    const int64_t native = native_activation_block();
    return native ? native : int64_t(8);  // oneDNN computes in neither (nhwc, ...): nChw8c with reorders
  }();
  return block;
}

std::string activation_layout_name() { return detail::concat("nChw", activation_block(), "c"); }

std::string onednn_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
  }
}

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
    const auto kind = dnnl::prop_kind::forward_inference;
    // The output carries the activation layout when its channels allow; oneDNN is asked for it first (with `any`
    // alone it picks brgconv's nhwc on AVX-512 for inference, and another layout again with a residual post-op).
    const bool act_out = s.K % activation_block() == 0;
    const memory::desc out_act = activation_md(s.N, s.K, s.OH(), s.OW());
    std::optional<dnnl::convolution_forward::primitive_desc> pd;
    if (act_out) {
      pd = forward_pd(s, bias, relu, kind, residual ? &out_act : nullptr, &out_act);
      if (is_reference(pd->impl_info_str())) pd.reset();
    }
    if (!pd) {  // oneDNN's own choice; the residual post-op then reads in that layout
      pd = forward_pd(s, bias, relu, kind);
      if (residual) {
        const memory::desc d = pd->dst_desc();
        pd = forward_pd(s, bias, relu, kind, &d, &d);
      }
    }
    auto plan = std::make_unique<BlockedPlan>();
    plan->prim = dnnl::convolution_forward(*pd);
    plan->impl = pd->impl_info_str();
    plan->src = pd->src_desc();
    plan->wei_user = plain_mds(s).w;
    plan->wei = pd->weights_desc();
    auto& e = cpu_engine();
    if (plan->wei != plan->wei_user)
      plan->wei_convert = dnnl::reorder(dnnl::reorder::primitive_desc(e, plan->wei_user, e, plan->wei));
    plan->dst = pd->dst_desc();
    plan->out = act_out ? out_act : plan->dst;
    if (plan->out != plan->dst) {
      plan->dst_convert = dnnl::reorder(dnnl::reorder::primitive_desc(e, plan->dst, e, plan->out));
      if (residual) plan->res_convert = dnnl::reorder(dnnl::reorder::primitive_desc(e, plan->out, e, plan->dst));
    }
    plan->scratch = pd->scratchpad_desc();
    plan->dst_layout = std::make_shared<BlockedLayout>(plan->out);
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

// Training on nChw<B>c: the forward and the backward-data of 3x3 stride-1 layers with enough channels run as
// Winograd (the backward-data is the forward convolution of dy with the filters transposed to [C][K] and rotated
// by 180 degrees); the backward-weights stays oneDNN's direct kernel.
void conv2d_forward_cb(const Conv2dShape& s, bool x_blk, const float* x, const float* w, const float* bias,
                       float* y) {
  const int64_t B = activation_block();
  if (x_blk && s.C % B == 0 && s.K % B == 0 && winograd_applicable(s)) {
    check_shape(s);
    conv2d_forward_winograd_blocked(s, B, x, w, bias, nullptr, false, y);
    return;
  }
  std::vector<void*> ptrs{mut(x), mut(w)};
  if (bias) ptrs.push_back(mut(bias));
  ptrs.push_back(y);
  run_checked(s, Pass::Forward, bias != nullptr, false, ptrs, {x_blk, true, B});
}

void conv2d_backward_data_cb(const Conv2dShape& s, const float* dy, const float* w, bool dx_blk, float* dx) {
  const int64_t B = activation_block();
  Conv2dShape t = s;  // dx = conv(dy, w^T rotated): K input channels, C output channels
  t.C = s.K, t.K = s.C;
  if (dx_blk && s.C % B == 0 && s.K % B == 0 && winograd_applicable(t)) {
    check_shape(s);
    float* wt = static_cast<float*>(thread_arena().get(8, sizeof(float) * size_t(s.K * s.C * 9)));
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t c = 0; c < s.C; ++c)
        for (int r = 0; r < 9; ++r) wt[(c * s.K + k) * 9 + r] = w[(k * s.C + c) * 9 + (8 - r)];
    conv2d_forward_winograd_blocked(t, B, dy, wt, nullptr, nullptr, false, dx);
    return;
  }
  run_checked(s, Pass::BackwardData, false, false, {mut(dy), mut(w), dx}, {dx_blk, true, B});
}

void conv2d_backward_weights_cb(const Conv2dShape& s, bool x_blk, const float* x, const float* dy, float* dw,
                                float* dbias) {
  std::vector<void*> ptrs{mut(x), mut(dy), dw};
  if (dbias) ptrs.push_back(dbias);
  run_checked(s, Pass::BackwardWeights, dbias != nullptr, false, ptrs, {x_blk, true, activation_block()});
}

std::string conv2d_cb_impl(const Conv2dShape& s, int pass, bool x_blk) {
  check_shape(s);
  ISLKD_CHECK(pass >= 0 && pass <= 2, "conv2d_cb_impl: pass must be 0, 1 or 2, got ", pass);
  return get_plan(s, static_cast<Pass>(pass), false, false, {x_blk, true, activation_block()}).impl;
}

std::string conv2d_forward_blocked_impl(const Conv2dShape& s, bool bias, bool fuse_relu, bool residual) {
  check_shape(s);
  return get_blocked_plan(s, bias, fuse_relu, residual).impl;
}

std::shared_ptr<const BlockedLayout> activation_layout(int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t B = activation_block();
  ISLKD_CHECK(N > 0 && C > 0 && H > 0 && W > 0 && C % B == 0, "activation_layout: nChw", B, "c needs positive dims "
              "and channels divisible by ", B, ", got [", N, ", ", C, ", ", H, ", ", W, "]");
  return std::make_shared<BlockedLayout>(activation_md(N, C, H, W));
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
  const int64_t B = activation_block();
  const bool winograd = winograd_applicable(s) && s.C % B == 0 && plan.dst_layout->block == B;
  try {
    auto& eng = cpu_engine();
    dnnl::stream& strm = thread_stream();
    ThreadArena& arena = thread_arena();
    memory x_mem(x_md, eng, mut(x));
    if (winograd) {  // our own kernel, in the activation layout on both sides
      const memory::desc x_act = activation_md(s.N, s.C, s.H, s.W);
      const float* src = x;
      if (x_md != x_act) {
        memory inner(x_act, eng, arena.get(1, x_act.get_size()));
        SingleThreadScope small(x_md.get_size() < kParallelMinBytes);
        dnnl::reorder(x_mem, inner).execute(strm, x_mem, inner);
        strm.wait();
        src = static_cast<const float*>(inner.get_data_handle());
      }
      conv2d_forward_winograd_blocked(s, B, src, w, bias, residual, fuse_relu, y);
      return;
    }
    std::unordered_map<int, memory> args;
    if (const dnnl::reorder* r = plan.src_convert(x_md)) {
      memory inner(plan.src, eng, arena.get(1, plan.src.get_size()));
      SingleThreadScope small(x_md.get_size() < kParallelMinBytes);
      r->execute(strm, x_mem, inner);
      args.emplace(DNNL_ARG_SRC, inner);
    } else {
      args.emplace(DNNL_ARG_SRC, x_mem);
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
    memory out_mem(plan.out, eng, y);
    memory dst_mem = plan.dst_convert ? memory(plan.dst, eng, arena.get(3, plan.dst.get_size())) : out_mem;
    args.emplace(DNNL_ARG_DST, dst_mem);
    if (residual) {
      memory res_mem(plan.out, eng, mut(residual));
      if (plan.res_convert) {
        memory inner(plan.dst, eng, arena.get(4, plan.dst.get_size()));
        plan.res_convert->execute(strm, res_mem, inner);
        res_mem = inner;
      }
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, res_mem);
    }
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(plan.scratch, eng, arena.get(0, plan.scratch.get_size())));
    plan.prim.execute(strm, args);
    if (plan.dst_convert) plan.dst_convert->execute(strm, dst_mem, out_mem);
    strm.wait();
  } catch (const dnnl::error& e) {
    ISLKD_FAIL("conv2d: oneDNN failed to execute for ", shape_text(s), ": ", e.what());
  }
}

void blocked_to_plain(const BlockedLayout& l, const float* src, float* dst) {
  reorder_activation("blocked_to_plain", l, false, src, dst);
}

}  // namespace islkd::cpu
