// `crd`: contrastive representation distillation (Tian et al. 2020) as RepDistiller trains it (crd/criterion.py
// CRDLoss, crd/memory.py ContrastMemory, dataset/cifar100.py CIFAR100InstanceSample mode 'exact', train_student.py):
//   ce_weight * CE + kd_weight * KD(T 4) + beta * (ContrastLoss(out_v1) + ContrastLoss(out_v2)).
// The pooled feature vector feat[-1] of the student and of the teacher goes through its own Embed (Linear to feat_dim,
// then x / |x|): v1 (student) and v2 (teacher). Two memory banks of N x feat_dim (N the training set's size, init
// U(-stdv, stdv), stdv = 1 / sqrt(feat_dim / 3)): memory_v1 holds the student side, memory_v2 the teacher side. For
// the batch's instances y with index rows idx[b] = [y_b, nce_k negatives]: out_v1 scores v1 against memory_v2[idx],
// out_v2 scores v2 against memory_v1[idx] (ops::crd_contrast_loss: the bank rows are constants; the normalisation
// constants Z_v1, Z_v2 are fixed on the run's first batch), then the banks take the batch (ops::crd_memory_update,
// momentum nce_m). Gradients reach the student's feature through embed_s and embed_t's parameters through out_v2.
//
// State: the embeds are trainable parameters (optimized with the student, same SGD; checkpointed as
// objective.crd.embed_{s,t}.linear.{weight,bias}); the banks and Z are buffers (checkpointed and resumed as
// objective.crd.contrast.{memory_v1,memory_v2,z_v1,z_v2}, never optimized). Memory: 2 x N x feat_dim floats on the
// training device, 61 MB for 60,000 instances (51 MB for CIFAR-100's 50,000); per step the index rows are
// B x (nce_k + 1) int32 (4.2 MB for batch 64, built on the host and copied), and scratch of B x (nce_k + 1) floats
// per side; the gathered negatives (B x (nce_k + 1) x feat_dim) are never materialised.
//
// Negatives ("exact" mode): for y_b of label c, nce_k instances drawn uniformly without replacement from those whose
// label is not c (with replacement when fewer than nce_k exist, as upstream's np.random.choice(replace=True)). Upstream
// draws them with numpy's global RNG in the loader's workers, which no run can reproduce; here each row is a pure
// function of (run seed, epoch, step, position in the batch): a counter-based generator (SplitMix64 of those four)
// drives a partial Fisher-Yates over the instances sorted by label, read as a virtual array that skips class c, with
// every swap undone afterwards, so the next row starts from the same array. --resume is then bit-identical.
//
// Settings {"beta", "ce_weight", "kd_weight", "feat_dim", "nce_k", "nce_t", "nce_m"}; the defaults are RepDistiller's
// `--distill crd` (train_student.py: gamma (CE) 1, alpha (KD) 0, beta 0.8, feat_dim 128, nce_k 16384, nce_t 0.07,
// nce_m 0.5; kd_T 4). nce_k must be below the training set's size (a small set needs a smaller nce_k).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/autograd.h"
#include "engine/distill/crd_negatives.h"
#include "engine/distill/feature_losses.h"
#include "engine/distill/objective.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "kernels/common/error.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::distill {

namespace {

constexpr float kCRDBeta = 0.8f;          // train_student.py -b for crd
constexpr int64_t kCRDFeatDim = 128;      // --feat_dim
constexpr int64_t kCRDNceK = 16384;       // --nce_k
constexpr float kCRDNceT = 0.07f;         // --nce_t
constexpr float kCRDNceM = 0.5f;          // --nce_m
constexpr float kCRDKdT = 4.0f;           // --kd_T

// Width of feat[-1] per instance (the flattened pooled vector).
int64_t feature_width(Module& m, const std::string& name, const Shape& input) {
  const Shape s = feature_shapes(m, {name}, input, "crd")[0];
  int64_t w = 1;
  for (size_t i = 1; i < s.size(); ++i) w *= s[i];
  return w;
}

// Host int32 rows to `device`; on CUDA through pinned staging on the copy stream (no pageable copy, no host wait in
// the step), as the teacher's cached logits.
Tensor upload_i32(const std::vector<int32_t>& v, Device device) {
  if (device != Device::CUDA) return Tensor::from_labels(v);
  Tensor d = Tensor::empty({static_cast<int64_t>(v.size())}, Device::CUDA, DType::I32);
  cuda::memcpy_h2d_staged(d.raw_data(), v.data(), v.size() * sizeof(int32_t));
  return d;
}

std::string last_feature(const Module& m) {
  const std::vector<std::string> names = m.feature_names();
  ISLKD_CHECK(!names.empty(), "objective crd: the model has no features; crd uses feat[-1]");
  return names.back();
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct CRDSettings {
  float beta = kCRDBeta, ce_weight = 1.0f, kd_weight = 0.0f;
  int64_t feat_dim = kCRDFeatDim, nce_k = kCRDNceK;
  float nce_t = kCRDNceT, nce_m = kCRDNceM;
};

class CRDObjective : public Objective {
 public:
  explicit CRDObjective(const CRDSettings& s) : s_(s) {}
  std::string name() const override { return "crd"; }
  nlohmann::json config() const override {
    return {{"beta", s_.beta},       {"ce_weight", s_.ce_weight}, {"kd_weight", s_.kd_weight},
            {"feat_dim", s_.feat_dim}, {"nce_k", s_.nce_k},       {"nce_t", s_.nce_t},
            {"nce_m", s_.nce_m}};
  }
  ObjectiveNeeds needs() const override {
    ObjectiveNeeds n;
    n.features = true;
    n.instances = true;
    n.teacher_logits = s_.kd_weight > 0.0f;
    if (!student_name_.empty()) n.student_features = {student_name_}, n.teacher_features = {teacher_name_};
    return n;
  }
  void bind(const ObjectiveContext& ctx) override {
    ISLKD_CHECK(ctx.student && ctx.teacher, "objective crd needs a student and a teacher");
    ISLKD_CHECK(ctx.train_labels && !ctx.train_labels->empty(),
                "objective crd needs the training set's labels at bind (ObjectiveContext::train_labels)");
    const int64_t n = static_cast<int64_t>(ctx.train_labels->size());
    ISLKD_CHECK(s_.nce_k < n, "objective crd: nce_k ", s_.nce_k, " negatives need more than ", s_.nce_k,
                " training instances, the set has ", n, "; pass a smaller nce_k (e.g. --objective-options "
                "'{\"nce_k\": ", std::max<int64_t>(1, n / 2), "}')");
    student_name_ = last_feature(*ctx.student);
    teacher_name_ = last_feature(*ctx.teacher);
    const int64_t s_dim = feature_width(*ctx.student, student_name_, ctx.input);
    const int64_t t_dim = feature_width(*ctx.teacher, teacher_name_, ctx.input);
    nn::InitRng rng(ctx.seed);
    embed_s_ = std::make_shared<nn::Linear>(s_dim, s_.feat_dim, true, rng);
    embed_t_ = std::make_shared<nn::Linear>(t_dim, s_.feat_dim, true, rng);
    const double stdv = 1.0 / std::sqrt(static_cast<double>(s_.feat_dim) / 3.0);
    memory_v1_ = Tensor::zeros({n, s_.feat_dim});
    memory_v2_ = Tensor::zeros({n, s_.feat_dim});
    nn::init::uniform(memory_v1_, -stdv, stdv, rng);
    nn::init::uniform(memory_v2_, -stdv, stdv, rng);
    z_v1_ = Tensor::full({1}, -1.0f), z_v2_ = Tensor::full({1}, -1.0f);  // unset, as ContrastMemory's params
    negatives_ = CRDNegatives(*ctx.train_labels, s_.nce_k, ctx.seed);
  }
  // The bank rows the batch updates: its instances, -1 for all but the last row of an instance the sampler repeats
  // in the batch (ISL's weighted mode draws with replacement): one write per row, the same on every device.
  static std::vector<int32_t> update_rows(const std::vector<int64_t>& indices) {
    std::vector<int32_t> y(indices.begin(), indices.end());
    std::vector<std::pair<int64_t, size_t>> order;
    for (size_t b = 0; b < indices.size(); ++b) order.emplace_back(indices[b], b);
    std::sort(order.begin(), order.end());
    for (size_t i = 0; i + 1 < order.size(); ++i)
      if (order[i].first == order[i + 1].first) y[order[i].second] = -1;
    return y;
  }
  std::vector<std::pair<std::string, Tensor>> parameters() const override {
    std::vector<std::pair<std::string, Tensor>> ps;
    if (!embed_s_) return ps;
    for (auto& [n, t] : embed_s_->named_parameters()) ps.emplace_back("crd.embed_s.linear." + n, t);
    for (auto& [n, t] : embed_t_->named_parameters()) ps.emplace_back("crd.embed_t.linear." + n, t);
    return ps;
  }
  std::vector<std::pair<std::string, Tensor>> buffers() const override {
    if (!embed_s_) return {};
    return {{"crd.contrast.memory_v1", memory_v1_},
            {"crd.contrast.memory_v2", memory_v2_},
            {"crd.contrast.z_v1", z_v1_},
            {"crd.contrast.z_v2", z_v2_}};
  }
  void to(Device d) override {
    if (!embed_s_) return;
    embed_s_->to(d), embed_t_->to(d);
    memory_v1_ = memory_v1_.to(d), memory_v2_ = memory_v2_.to(d), z_v1_ = z_v1_.to(d), z_v2_ = z_v2_.to(d);
  }
  Tensor loss(const ObjectiveInputs& in) override {
    ISLKD_CHECK(embed_s_, "objective crd was not bound to the models (Objective::bind)");
    auto fs = in.student_features.find(student_name_);
    auto ft = in.teacher_features.find(teacher_name_);
    ISLKD_CHECK(fs != in.student_features.end() && ft != in.teacher_features.end(), "objective crd: no '",
                student_name_, "' / '", teacher_name_, "' feature of the student / teacher in the step's inputs");
    const int64_t B = fs->second.size(0), K1 = s_.nce_k + 1;
    ISLKD_CHECK(static_cast<int64_t>(in.indices.size()) == B, "objective crd: the step has ", in.indices.size(),
                " instance indices for a batch of ", B, " (ObjectiveInputs::indices)");
    const Device dev = memory_v1_.device();
    const Tensor idx = upload_i32(negatives_.rows(in.epoch, in.step, in.indices), dev).view({B, K1});
    const Tensor y = upload_i32(update_rows(in.indices), dev);

    const Tensor v1 = (*embed_s_)(fs->second), v2 = (*embed_t_)(ft->second);  // Linear flattens N x ... inputs
    // ContrastMemory: out_v1 = v1 against the teacher side's bank, out_v2 = v2 against the student side's.
    Tensor crd = ops::add(ops::crd_contrast_loss(v1, memory_v2_, idx, s_.nce_t, z_v1_),
                          ops::crd_contrast_loss(v2, memory_v1_, idx, s_.nce_t, z_v2_));
    ops::crd_memory_update(memory_v1_, v1, y, s_.nce_m);
    ops::crd_memory_update(memory_v2_, v2, y, s_.nce_m);

    Tensor total = ops::cross_entropy(in.student_logits, in.labels);
    if (s_.ce_weight != 1.0f) total = ops::scale(total, s_.ce_weight);
    if (s_.kd_weight > 0.0f) {
      KDLossParams kp;
      kp.temperature = kCRDKdT, kp.alpha = 1.0f;  // alpha * T^2 * KL only: RepDistiller's DistillKL(kd_T)
      Tensor kd = ops::kd_loss(in.student_logits, in.teacher_logits, in.labels, kp).loss;
      total = ops::add(total, s_.kd_weight != 1.0f ? ops::scale(kd, s_.kd_weight) : kd);
    }
    return ops::add(total, s_.beta != 1.0f ? ops::scale(crd, s_.beta) : crd);
  }

 private:
  CRDSettings s_;
  std::string student_name_, teacher_name_;
  std::shared_ptr<nn::Linear> embed_s_, embed_t_;
  Tensor memory_v1_, memory_v2_, z_v1_, z_v2_;
  CRDNegatives negatives_;
};

}  // namespace

CRDNegatives::CRDNegatives(const std::vector<int32_t>& labels, int64_t k, uint64_t seed) : k_(k), seed_(seed) {
  const int64_t n = static_cast<int64_t>(labels.size());
  int32_t classes = 0;
  for (int32_t c : labels) {
    ISLKD_CHECK(c >= 0, "objective crd: a training label is negative (", c, ")");
    classes = std::max(classes, c + 1);
  }
  labels_ = labels;
  sorted_.resize(static_cast<size_t>(n));
  std::iota(sorted_.begin(), sorted_.end(), 0);
  std::stable_sort(sorted_.begin(), sorted_.end(), [&](int32_t a, int32_t b) { return labels[a] < labels[b]; });
  begin_.assign(static_cast<size_t>(classes), 0), count_.assign(static_cast<size_t>(classes), 0);
  for (int32_t c : labels) ++count_[c];
  for (int32_t c = 1; c < classes; ++c) begin_[c] = begin_[c - 1] + count_[c - 1];
  for (int32_t c = 0; c < classes; ++c)
    ISLKD_CHECK(count_[c] < n, "objective crd: every training instance has label ", c,
                "; contrastive negatives need instances of another class");
}

// One row: a partial Fisher-Yates over the virtual pool (sorted_ without class c's run) in the caller's scratch copy
// `a` of sorted_, every swap undone afterwards so the next row starts from sorted_ again.
void CRDNegatives::row(uint64_t key, int64_t y, std::vector<int32_t>& a, int32_t* out) const {
  const int32_t c = labels_[y];
  const int64_t first = begin_[c], skip = count_[c], pool = static_cast<int64_t>(sorted_.size()) - skip;
  auto at = [&](int64_t p) { return p < first ? p : p + skip; };  // pool position -> sorted_ position
  auto draw = [&](int64_t i, int64_t n) {  // uniform in [0, n) (multiply-shift: bias below n / 2^64), draw i
    const unsigned __int128 r = splitmix64(key + static_cast<uint64_t>(i + 1) * 0xd1b54a32d192ed03ull);
    return static_cast<int64_t>((r * static_cast<unsigned __int128>(n)) >> 64);
  };
  out[0] = static_cast<int32_t>(y);
  if (pool < k_) {  // upstream: np.random.choice(..., replace=True) when the pool is smaller than k
    for (int64_t i = 0; i < k_; ++i) out[i + 1] = sorted_[at(draw(i, pool))];
    return;
  }
  std::vector<int64_t> swaps(static_cast<size_t>(k_));
  for (int64_t i = 0; i < k_; ++i) {
    const int64_t j = i + draw(i, pool - i);
    swaps[i] = j;
    std::swap(a[at(i)], a[at(j)]);
    out[i + 1] = a[at(i)];
  }
  for (int64_t i = k_ - 1; i >= 0; --i) std::swap(a[at(i)], a[at(swaps[i])]);
}

std::vector<int32_t> CRDNegatives::rows(int64_t epoch, int64_t step, const std::vector<int64_t>& indices) const {
  const int64_t B = static_cast<int64_t>(indices.size()), K1 = k_ + 1, n = size();
  for (int64_t i : indices)
    ISLKD_CHECK(i >= 0 && i < n, "objective crd: instance index ", i, " is outside the training set's ", n);
  std::vector<int32_t> out(static_cast<size_t>(B * K1));
  const uint64_t base = splitmix64(splitmix64(splitmix64(seed_ ^ 0x637264ull) ^ static_cast<uint64_t>(epoch)) ^
                                   static_cast<uint64_t>(step));
  // Rows in parallel, each thread with its own scratch copy of sorted_ (N int32: 200 kB for 50,000 instances).
#pragma omp parallel
  {
    std::vector<int32_t> a = sorted_;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) row(splitmix64(base ^ static_cast<uint64_t>(b)), indices[b], a, out.data() + b * K1);
  }
  return out;
}

std::unique_ptr<Objective> make_crd_objective(const nlohmann::json& options) {
  CRDSettings s;
  for (const auto& [key, v] : options.items()) {
    const bool count = key == "feat_dim" || key == "nce_k";
    ISLKD_CHECK(count || key == "beta" || key == "ce_weight" || key == "kd_weight" || key == "nce_t" ||
                    key == "nce_m",
                "objective crd: unknown setting '", key,
                "' (expected beta, ce_weight, kd_weight, feat_dim, nce_k, nce_t, nce_m)");
    if (count) {
      ISLKD_CHECK(v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() < (int64_t(1) << 30),
                  "objective crd: ", key, " must be an integer >= 1, got ", v.dump());
      (key == "feat_dim" ? s.feat_dim : s.nce_k) = v.get<int64_t>();
      continue;
    }
    ISLKD_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0, "objective crd: ", key,
                " must be a number >= 0, got ", v.dump());
    const float f = v.get<float>();
    if (key == "nce_t") ISLKD_CHECK(f > 0.0f, "objective crd: nce_t must be > 0, got ", v.dump());
    if (key == "nce_m") ISLKD_CHECK(f <= 1.0f, "objective crd: nce_m must be in [0, 1], got ", v.dump());
    (key == "beta" ? s.beta : key == "ce_weight" ? s.ce_weight : key == "kd_weight" ? s.kd_weight
     : key == "nce_t" ? s.nce_t : s.nce_m) = f;
  }
  return std::make_unique<CRDObjective>(s);
}

}  // namespace islkd::distill
