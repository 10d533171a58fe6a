// Gradient buckets: pack, all-reduce (mean), unpack. GPU gradients go through host memory over MPI for now; NCCL on
// the device buffers, and starting a bucket while the backward still runs, are what docs/distributed.md lists next.
#include "engine/train/grad_buckets.h"

#include <chrono>
#include <cstring>

#include "engine/autograd.h"
#include "kernels/common/error.h"

namespace islkd::train {

GradientBuckets::GradientBuckets(std::vector<std::pair<std::string, Tensor>> params, int64_t bucket_bytes,
                                 dist::Communicator& comm)
    : params_(std::move(params)), comm_(comm) {
  ISLKD_CHECK(bucket_bytes > 0, "gradient buckets: the size must be > 0 bytes, got ", bucket_bytes);
  std::vector<size_t> open;
  int64_t open_bytes = 0;
  for (size_t i = params_.size(); i-- > 0;) {
    open.push_back(i);
    open_bytes += params_[i].second.numel() * static_cast<int64_t>(sizeof(float));
    if (open_bytes >= bucket_bytes) {
      buckets_.push_back(std::move(open));
      open.clear();
      open_bytes = 0;
    }
  }
  if (!open.empty()) buckets_.push_back(std::move(open));
  int64_t largest = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) largest = std::max(largest, bucket_floats(b));
  flat_.resize(static_cast<size_t>(largest));
  present_.resize(params_.size());
}

int64_t GradientBuckets::bucket_floats(size_t b) const {
  int64_t n = 0;
  for (size_t i : buckets_[b]) n += params_[i].second.numel();
  return n;
}

void GradientBuckets::reduce(float weight) {
  if (comm_.size() == 1 && weight == 1.0f) return;  // nothing to average: the gradients stay as they are, bit for bit
  const auto t0 = std::chrono::steady_clock::now();
  NoGradGuard no_grad;
  // Which parameters have a gradient on some rank (the set is the same on every rank for one model; a rank with no
  // instances in the last batch has none at all).
  for (size_t i = 0; i < params_.size(); ++i) present_[i] = params_[i].second.grad().defined() ? 1.0f : 0.0f;
  comm_.allreduce_mean(present_.data(), static_cast<int64_t>(present_.size()));
  for (size_t b = 0; b < buckets_.size(); ++b) {
    int64_t at = 0;
    for (size_t i : buckets_[b]) {
      const Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      float* dst = flat_.data() + at;
      Tensor g = p.grad();
      if (g.defined()) {
        ISLKD_CHECK(g.numel() == n, "gradient buckets: the gradient of '", params_[i].first, "' has ", g.numel(),
                    " elements, the parameter ", n);
        const Tensor host = g.to_plain().to(Device::CPU);
        std::memcpy(dst, host.data(), static_cast<size_t>(n) * sizeof(float));
        if (weight != 1.0f)
          for (int64_t k = 0; k < n; ++k) dst[k] *= weight;
      } else {
        std::memset(dst, 0, static_cast<size_t>(n) * sizeof(float));
      }
      at += n;
    }
    comm_.allreduce_mean(flat_.data(), at);
    at = 0;
    for (size_t i : buckets_[b]) {
      const Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      if (present_[i] > 0.0f) {
        // A fresh tensor, never the old gradient's storage: autograd may have handed that storage out without a copy.
        Tensor host = Tensor::empty(p.shape(), Device::CPU);
        std::memcpy(host.data(), flat_.data() + at, static_cast<size_t>(n) * sizeof(float));
        p.set_grad(p.device() == Device::CPU ? host : host.to(p.device()));
      }
      at += n;
    }
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++calls_;
}

}  // namespace islkd::train
