// Gradient buckets: pack, all-reduce (mean), unpack; over MPI through host memory, or over NCCL on device buffers
// with the packing and unpacking kernels on the compute stream. Starting a bucket while the backward still runs is
// what docs/distributed.md lists next.
#include "engine/train/grad_buckets.h"

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
    if (open_bytes >= bucket_bytes) {
      buckets_.push_back(std::move(open));
      open.clear();
      open_bytes = 0;
    }
  }
  if (!open.empty()) buckets_.push_back(std::move(open));
  int64_t largest = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) largest = std::max(largest, bucket_floats(b));
  if (!nccl_) flat_.resize(static_cast<size_t>(largest));
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
  if (nccl_) {
    // Also in a world of one rank (--grad-allreduce nccl): the GPU check runs NCCL there.
    const auto t0 = std::chrono::steady_clock::now();
    reduce_on_device(weight);
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++calls_;
    return;
  }
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

// The same steps as reduce()'s MPI path, on the device: pack (weight x gradient, or zeros) into the bucket's buffer,
// sum over the ranks, unpack x 1/size into fresh gradient tensors. seconds() counts the host's time queueing it (and
// the presence exchange): the device work itself overlaps what the host queues next.
void GradientBuckets::reduce_on_device(float weight) {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) present_[i] = params_[i].second.grad().defined() ? 1.0f : 0.0f;
  comm_.allreduce_mean(present_.data(), static_cast<int64_t>(present_.size()));
  if (device_flat_.empty())
    for (size_t b = 0; b < buckets_.size(); ++b)
      device_flat_.push_back(Tensor::empty({bucket_floats(b)}, Device::CUDA));
  std::vector<dist::Nccl::Buffer> buffers;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    float* flat = device_flat_[b].data();
    int64_t at = 0;
    for (size_t i : buckets_[b]) {
      const Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      const Tensor g = p.grad();
      if (g.defined()) {
        ISLKD_CHECK(g.numel() == n, "gradient buckets: the gradient of '", params_[i].first, "' has ", g.numel(),
                    " elements, the parameter ", n);
        const Tensor plain = g.to_plain();
        ISLKD_CHECK(plain.device() == Device::CUDA, "gradient buckets over NCCL: the gradient of '", params_[i].first,
                    "' is not on the CUDA device");
        if (weight == 1.0f)
          cuda::copy(plain.data(), flat + at, n);
        else
          cuda::scale(plain.data(), weight, flat + at, n);
      } else {
        cuda::fill(flat + at, 0.0f, n);
      }
      at += n;
    }
    buffers.push_back({flat, at});
  }
  nccl_->allreduce_sum(buffers, cuda::comm_stream_after_compute());
  cuda::compute_waits_for_comm_stream();
  const float inv = 1.0f / static_cast<float>(comm_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const float* flat = device_flat_[b].data();
    int64_t at = 0;
    for (size_t i : buckets_[b]) {
      const Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      if (present_[i] > 0.0f) {
        Tensor g = Tensor::empty(p.shape(), Device::CUDA);  // fresh, as in the MPI path
        if (comm_.size() > 1)
          cuda::scale(flat + at, inv, g.data(), n);
        else
          cuda::copy(flat + at, g.data(), n);
        p.set_grad(g);
      }
      at += n;
    }
  }
}

}  // namespace islkd::train
