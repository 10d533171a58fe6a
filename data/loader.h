// The loader: worker threads read, augment and normalise whole batches ahead of the training loop through a
// bounded queue. Batch k of an epoch is the same whatever the worker count (its contents depend only on the
// sampler's list, the seed, the epoch and k), and batches come out in order.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "engine/tensor.h"

namespace islkd::data {

struct Batch {
  Tensor images;                 // float32 N x C x H x W on the loader's device
  Tensor labels;                 // int32 N on the loader's device
  std::vector<int64_t> indices;  // the dataset instance of each row (the curriculum scores by these)
  int64_t epoch = 0;
  int64_t number = 0;            // batch number within the epoch
};

struct LoaderOptions {
  int64_t batch_size = 128;  // clamped to the dataset's size (a huge --batch-size is the whole set in one batch)
  bool drop_last = false;
  int workers = 0;       // 0 = default_loader_workers()
  int prefetch = 0;      // batches decoded ahead of the consumer; 0 = 2 per worker
  uint64_t seed = 0;     // augmentation seed (with the epoch and instance index)
  Device device = Device::CPU;
};
int default_loader_workers();  // hardware threads, clamped to 1..4

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, Transform transform, std::shared_ptr<Sampler> sampler,
         LoaderOptions options);
  ~Loader();  // stops and joins the workers, also in the middle of an epoch
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Asks the sampler for the epoch's indices and starts producing. Abandons what is left of a previous epoch.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, false when the epoch is exhausted. On CUDA the copies to the device are
  // queued on the copy stream: call device::wait_prefetch() (engine/device.h) before the first op on the batch. Rethrows a worker's
  // error (e.g. an unreadable image) as it reaches that batch.
  bool next(Batch& out);
  int64_t batches_in_epoch() const { return num_batches_; }
  int workers() const { return static_cast<int>(threads_.size()); }
  const Dataset& dataset() const { return *dataset_; }

 private:
  struct Slot {
    int64_t number = -1;  // the batch held, -1 = free
    bool ready = false;
    Batch batch;
    std::exception_ptr error;
    // CUDA only: pinned staging buffers the worker fills and the consumer copies to the device from.
    float* pinned_images = nullptr;
    int32_t* pinned_labels = nullptr;
  };
  void worker_loop();
  Batch produce(int64_t number, Slot& slot, int64_t epoch, const std::vector<int64_t>& plan) const;
  void wait_workers_idle(std::unique_lock<std::mutex>& lock);  // no worker touches a slot after this
  void release_taken_cuda();  // gives the consumer's previous slot back once its async copy is done

  std::shared_ptr<const Dataset> dataset_;
  Transform transform_;
  std::shared_ptr<Sampler> sampler_;
  LoaderOptions opt_;

  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_, idle_cv_;
  bool stop_ = false;
  bool active_ = false;
  int64_t epoch_ = 0;
  std::shared_ptr<const std::vector<int64_t>> plan_;  // the epoch's indices
  int64_t num_batches_ = 0;
  int64_t next_claim_ = 0;  // next batch number a worker takes
  int64_t released_ = 0;    // batches whose slot the consumer has given back
  int64_t taken_ = 0;       // batches handed to the consumer
  int busy_ = 0;            // workers producing right now
  std::vector<Slot> slots_;
  std::vector<std::thread> threads_;
};

}  // namespace islkd::data
