// Loader threads and their hand-off. Workers claim batch numbers in order from a counter and may finish out of
// order; the consumer waits for exactly the next number, so order never depends on timing. A worker may only
// claim batch k while k < released + slots, which bounds the memory ahead of the consumer.
// CPU: a worker writes straight into the Tensor the consumer receives (no staging copy).
// CUDA: a worker writes into its slot's pinned buffers; the consumer queues the host-to-device copy on the copy
// stream and gives the slot back at its next call, after the copy has completed.
#include "data/loader.h"

#include <algorithm>

#include "kernels/common/checked.h"
#include "kernels/common/error.h"
#include "engine/device.h"

namespace islkd::data {

int default_loader_workers() {
  unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp<unsigned>(hw, 1, 4));
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, Transform transform, std::shared_ptr<Sampler> sampler,
               LoaderOptions options)
    : dataset_(std::move(dataset)), transform_(std::move(transform)), sampler_(std::move(sampler)), opt_(options) {
  ISLKD_CHECK(dataset_ && sampler_, "Loader: needs a dataset and a sampler");
  ISLKD_CHECK(opt_.batch_size > 0, "Loader: batch size must be positive, got ", opt_.batch_size);
  // Bounds the pinned buffers below and every batch: no batch can hold more than the dataset.
  opt_.batch_size = std::min(opt_.batch_size, std::max<int64_t>(dataset_->size(), 1));
  ISLKD_CHECK(transform_.config().mean.size() == static_cast<size_t>(dataset_->channels()),
              "Loader: the transform normalises ", transform_.config().mean.size(), " channels, the dataset has ",
              dataset_->channels());
  ISLKD_CHECK(!transform_.config().dataset_crop || dataset_->has_train_crop(), "Loader: the transform asks for ",
              dataset_->source(), "'s own training crop, which it does not have");
  const int workers = opt_.workers > 0 ? opt_.workers : default_loader_workers();
  const int depth = opt_.prefetch > 0 ? opt_.prefetch : 2 * workers;
  slots_.resize(static_cast<size_t>(depth));
  if (opt_.device == Device::CUDA) {
    const size_t img_bytes = static_cast<size_t>(
        checked_mul(checked_mul(opt_.batch_size, dataset_->instance_bytes(), "Loader: pixels per batch"),
                    static_cast<int64_t>(sizeof(float)), "Loader: bytes per batch"));
    try {
      for (auto& s : slots_) {
        s.pinned_images = static_cast<float*>(device::pinned_host_alloc(img_bytes));
        s.pinned_labels =
            static_cast<int32_t*>(device::pinned_host_alloc(static_cast<size_t>(opt_.batch_size) * sizeof(int32_t)));
      }
    } catch (...) {
      for (auto& s : slots_) {
        if (s.pinned_images) device::pinned_host_free(s.pinned_images);
        if (s.pinned_labels) device::pinned_host_free(s.pinned_labels);
      }
      throw;
    }
  }
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
  if (opt_.device == Device::CUDA) {
    try {
      if (taken_ > released_) device::synchronize();  // a copy may still read the last slot
    } catch (...) {
    }
    for (auto& s : slots_) {
      device::pinned_host_free(s.pinned_images);
      device::pinned_host_free(s.pinned_labels);
    }
  }
}

void Loader::wait_workers_idle(std::unique_lock<std::mutex>& lock) {
  active_ = false;
  idle_cv_.wait(lock, [&] { return busy_ == 0; });
}

void Loader::release_taken_cuda() {
  if (taken_ == released_) return;
  // The consumer has used the previous batch; its copy must be over before a worker rewrites the slot.
  device::synchronize();
  std::lock_guard<std::mutex> lock(mu_);
  released_ = taken_;
  work_cv_.notify_all();
}

void Loader::start_epoch(int64_t epoch) {
  std::vector<int64_t> plan = sampler_->indices(epoch);
  for (size_t i = 0; i < plan.size(); ++i)
    ISLKD_CHECK(plan[i] >= 0 && plan[i] < dataset_->size(), "Loader: the sampler's index ", plan[i], " at position ",
                i, " of epoch ", epoch, " is outside the dataset (", dataset_->size(), " instances)");
  if (opt_.device == Device::CUDA) release_taken_cuda();
  std::unique_lock<std::mutex> lock(mu_);
  wait_workers_idle(lock);
  for (auto& s : slots_) {
    s.number = -1;
    s.ready = false;
    s.batch = Batch{};
    s.error = nullptr;
  }
  const int64_t n = static_cast<int64_t>(plan.size());
  num_batches_ = opt_.drop_last ? n / opt_.batch_size : ceil_div(n, opt_.batch_size);
  plan_ = std::make_shared<const std::vector<int64_t>>(std::move(plan));
  epoch_ = epoch;
  next_claim_ = released_ = taken_ = 0;
  active_ = true;
  work_cv_.notify_all();
}

bool Loader::next(Batch& out) {
  if (opt_.device == Device::CUDA) release_taken_cuda();
  std::unique_lock<std::mutex> lock(mu_);
  ISLKD_CHECK(active_, "Loader::next called before start_epoch");
  if (taken_ == num_batches_) return false;
  Slot& s = slots_[static_cast<size_t>(taken_ % static_cast<int64_t>(slots_.size()))];
  ready_cv_.wait(lock, [&] { return s.ready && s.number == taken_; });
  if (s.error) std::rethrow_exception(s.error);  // the slot keeps it: the epoch cannot go past this batch
  out = std::move(s.batch);
  if (opt_.device == Device::CUDA) {
    const int64_t n = static_cast<int64_t>(out.indices.size());
    out.images = Tensor::empty({n, dataset_->channels(), dataset_->height(), dataset_->width()}, Device::CUDA);
    out.labels = Tensor::empty({n}, Device::CUDA, DType::I32);
    device::copy_to_device_prefetch(out.images.data(), s.pinned_images, static_cast<size_t>(out.images.numel()) * 4);
    device::copy_to_device_prefetch(out.labels.data_i32(), s.pinned_labels, static_cast<size_t>(n) * 4);
  }
  s.ready = false;
  s.number = -1;
  s.batch = Batch{};
  ++taken_;
  if (opt_.device != Device::CUDA) {
    released_ = taken_;
    work_cv_.notify_all();
  }
  return true;
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ || (active_ && next_claim_ < num_batches_ &&
                       next_claim_ < released_ + static_cast<int64_t>(slots_.size()));
    });
    if (stop_) return;
    const int64_t k = next_claim_++;
    Slot& slot = slots_[static_cast<size_t>(k % static_cast<int64_t>(slots_.size()))];
    std::shared_ptr<const std::vector<int64_t>> plan = plan_;
    const int64_t epoch = epoch_;
    ++busy_;
    lock.unlock();
    Batch b;
    std::exception_ptr err;
    try {
      b = produce(k, slot, epoch, *plan);
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    --busy_;
    slot.number = k;
    slot.batch = std::move(b);
    slot.error = err;
    slot.ready = true;
    ready_cv_.notify_all();
    idle_cv_.notify_all();
  }
}

Batch Loader::produce(int64_t number, Slot& slot, int64_t epoch, const std::vector<int64_t>& plan) const {
  const int64_t begin = number * opt_.batch_size;
  const int64_t n = std::min<int64_t>(opt_.batch_size, static_cast<int64_t>(plan.size()) - begin);
  const int64_t per = dataset_->instance_bytes();
  Batch b;
  b.epoch = epoch;
  b.number = number;
  b.indices.assign(plan.begin() + begin, plan.begin() + begin + n);
  float* images;
  int32_t* labels;
  if (opt_.device == Device::CUDA) {
    images = slot.pinned_images;
    labels = slot.pinned_labels;
  } else {
    b.images = Tensor::empty({n, dataset_->channels(), dataset_->height(), dataset_->width()});
    b.labels = Tensor::empty({n}, Device::CPU, DType::I32);
    images = b.images.data();
    labels = b.labels.data_i32();
  }
  // In-memory datasets are read in place; others decode into a scratch buffer (here, in the worker thread).
  const bool dataset_crop = transform_.config().dataset_crop;
  const auto* in_memory = dataset_crop ? nullptr : dynamic_cast<const InMemoryDataset*>(dataset_.get());
  std::vector<uint8_t> scratch(in_memory ? 0 : static_cast<size_t>(per));
  for (int64_t j = 0; j < n; ++j) {
    const int64_t idx = b.indices[static_cast<size_t>(j)];
    const uint8_t* src;
    if (in_memory) {
      src = in_memory->pixels(idx);
    } else if (dataset_crop) {
      dataset_->read_train_crop(idx, scratch.data(), opt_.seed, epoch);
      src = scratch.data();
    } else {
      dataset_->read(idx, scratch.data());
      src = scratch.data();
    }
    transform_.apply(src, images + j * per, opt_.seed, epoch, idx);
    labels[j] = dataset_->label(idx);
  }
  return b;
}

}  // namespace islkd::data
