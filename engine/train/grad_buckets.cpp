// Gradient buckets: pack, all-reduce (mean), unpack; over MPI through host memory (non-blocking sums, moved on by the
// backward's ready() calls), or over NCCL on device buffers with the packing and unpacking kernels on the compute
// stream; each bucket starts as soon as the backward has made its gradients final.
#include "engine/train/grad_buckets.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "engine/autograd.h"
#include "kernels/common/error.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::train {

GradAllreduce parse_grad_allreduce(const std::string& name) {
  if (name == "auto") return GradAllreduce::Auto;
  if (name == "mpi") return GradAllreduce::Mpi;
  if (name == "nccl") return GradAllreduce::Nccl;
  ISLKD_FAIL("--grad-allreduce: '", name, "' is not one of auto, mpi, nccl");
}

GradientBuckets::GradientBuckets(std::vector<std::pair<std::string, Tensor>> params, int64_t bucket_bytes,
                                 dist::Communicator& comm, std::shared_ptr<dist::Nccl> nccl)
    : params_(std::move(params)), comm_(comm), nccl_(std::move(nccl)) {
  ISLKD_CHECK(bucket_bytes > 0, "gradient buckets: the size must be > 0 bytes, got ", bucket_bytes);
  std::vector<size_t> open;
  int64_t open_bytes = 0;
  for (size_t i = params_.size(); i-- > 0;) {
    open.push_back(i);
    open_bytes += params_[i].second.numel() * static_cast<int64_t>(sizeof(float));
    if (open_bytes >= (buckets_.empty() ? std::min(bucket_bytes, kFirstBucketBytes) : bucket_bytes)) {
      buckets_.push_back(std::move(open));
      open.clear();
      open_bytes = 0;
    }
  }
  if (!open.empty()) buckets_.push_back(std::move(open));
  int64_t total = 0;
  bucket_of_.resize(params_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    offset_.push_back(total);
    total += bucket_floats(b);
    for (size_t i : buckets_[b]) bucket_of_[i] = b;
  }
  if (!nccl_) flat_.resize(static_cast<size_t>(total));
  unready_.resize(buckets_.size());
  ready_.resize(params_.size());
  present_.resize(params_.size());
  if (nccl_)
    for (const auto& [name, p] : params_)
      ISLKD_CHECK(p.device() == Device::CUDA, "gradient buckets over NCCL: parameter '", name,
                  "' is not on the CUDA device");
}

int64_t GradientBuckets::bucket_floats(size_t b) const {
  int64_t n = 0;
  for (size_t i : buckets_[b]) n += params_[i].second.numel();
  return n;
}

void GradientBuckets::reduce(float weight) {
  begin(weight);
  finish();
}

void GradientBuckets::begin(float weight) {
  ISLKD_CHECK(!active_, "gradient buckets: begin() twice without finish()");
  active_ = true;
  weight_ = weight;
  started_ = 0;
  // Nothing to average over one rank (unless NCCL is forced there: the GPU check runs it): the gradients stay as they
  // are, bit for bit.
  pass_through_ = !nccl_ && comm_.size() == 1 && weight == 1.0f;
  if (pass_through_) return;
  for (size_t b = 0; b < buckets_.size(); ++b) unready_[b] = static_cast<int64_t>(buckets_[b].size());
  std::fill(ready_.begin(), ready_.end(), 0);
  // Looked up afresh each step: a resumed or re-bound model may hold other tensors than at construction.
  index_.clear();
  for (size_t i = 0; i < params_.size(); ++i) index_[params_[i].second.impl()] = i;
  if (nccl_ && device_flat_.empty())
    for (size_t b = 0; b < buckets_.size(); ++b)
      device_flat_.push_back(Tensor::empty({bucket_floats(b)}, Device::CUDA));
}

void GradientBuckets::ready(const Tensor& leaf) {
  if (!active_ || pass_through_) return;
  auto it = index_.find(leaf.impl());
  if (it == index_.end() || ready_[it->second]) return;  // not a trained parameter (or reported already)
  const auto t0 = std::chrono::steady_clock::now();
  ready_[it->second] = 1;
  --unready_[bucket_of_[it->second]];
  while (started_ < buckets_.size() && unready_[started_] == 0) start_bucket(started_++);
  comm_.progress();
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void GradientBuckets::finish() {
  ISLKD_CHECK(active_, "gradient buckets: finish() without begin()");
  active_ = false;
  if (pass_through_) return;
  const auto t0 = std::chrono::steady_clock::now();
  NoGradGuard no_grad;
  while (started_ < buckets_.size()) start_bucket(started_++);
  // Which parameters have a gradient on some rank (the set is the same on every rank for one model; a rank with no
  // instances in the last batch has none at all). After the buckets, so every rank starts the collectives in one order.
  for (size_t i = 0; i < params_.size(); ++i) present_[i] = params_[i].second.grad().defined() ? 1.0f : 0.0f;
  comm_.allreduce_mean(present_.data(), static_cast<int64_t>(present_.size()));
  if (nccl_)
    cuda::compute_waits_for_comm_stream();
  else
    comm_.wait_all();
  unpack();
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++calls_;
}

// MPI: weight x gradient (or zeros) into the bucket's slice of flat_, then a non-blocking sum over the ranks.
// NCCL: the same on the compute stream into the bucket's device buffer, then ncclAllReduce on the comm stream after
// an event of the compute stream; the host never waits.
void GradientBuckets::start_bucket(size_t b) {
  NoGradGuard no_grad;
  float* flat = nccl_ ? device_flat_[b].data() : flat_.data() + offset_[b];
  int64_t at = 0;
  for (size_t i : buckets_[b]) {
    const Tensor& p = params_[i].second;
    const int64_t n = p.numel();
    const Tensor g = p.grad();
    if (g.defined()) {
      ISLKD_CHECK(g.numel() == n, "gradient buckets: the gradient of '", params_[i].first, "' has ", g.numel(),
                  " elements, the parameter ", n);
      if (nccl_) {
        const Tensor plain = g.to_plain();
        ISLKD_CHECK(plain.device() == Device::CUDA, "gradient buckets over NCCL: the gradient of '", params_[i].first,
                    "' is not on the CUDA device");
        if (weight_ == 1.0f)
          cuda::copy(plain.data(), flat + at, n);
        else
          cuda::scale(plain.data(), weight_, flat + at, n);
      } else {
        const Tensor host = g.to_plain().to(Device::CPU);
        float* dst = flat + at;
        std::memcpy(dst, host.data(), static_cast<size_t>(n) * sizeof(float));
        if (weight_ != 1.0f)
          for (int64_t k = 0; k < n; ++k) dst[k] *= weight_;
      }
    } else if (nccl_) {
      cuda::fill(flat + at, 0.0f, n);
    } else {
      std::memset(flat + at, 0, static_cast<size_t>(n) * sizeof(float));
    }
    at += n;
  }
  if (nccl_)
    nccl_->allreduce_sum({{flat, at}}, cuda::comm_stream_after_compute());
  else
    comm_.start_allreduce_sum(flat, at);
}

void GradientBuckets::unpack() {
  const float inv = 1.0f / static_cast<float>(comm_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const float* flat = nccl_ ? device_flat_[b].data() : flat_.data() + offset_[b];
    int64_t at = 0;
    for (size_t i : buckets_[b]) {
      const Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      if (present_[i] > 0.0f) {
        // A fresh tensor, never the old gradient's storage: autograd may have handed that storage out without a copy.
        if (nccl_) {
          Tensor g = Tensor::empty(p.shape(), Device::CUDA);
          if (comm_.size() > 1)
            cuda::scale(flat + at, inv, g.data(), n);
          else
            cuda::copy(flat + at, g.data(), n);
          p.set_grad(g);
        } else {
          Tensor host = Tensor::empty(p.shape(), Device::CPU);
          float* dst = host.data();
          if (comm_.size() > 1)
            for (int64_t k = 0; k < n; ++k) dst[k] = flat[at + k] * inv;
          else
            std::memcpy(dst, flat + at, static_cast<size_t>(n) * sizeof(float));
          p.set_grad(p.device() == Device::CPU ? host : host.to(p.device()));
        }
      }
      at += n;
    }
  }
}

}  // namespace islkd::train
