// Loader: order and content independent of the worker count, samplers, drop_last, error propagation, shutdown.
#include <atomic>
#include <chrono>
#include <limits>
#include <set>

#include "data/loader.h"
#include "kernels/common/error.h"
#include "kernels/cuda/cuda_kernels.h"
#include "tests/data/fixtures.h"

using namespace islkd;
using namespace islkd::data;

namespace {

std::shared_ptr<InMemoryDataset> synthetic(int64_t n, int c = 3, int h = 8, int w = 8) {
  std::vector<uint8_t> px(static_cast<size_t>(n * c * h * w));
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = test::fixture_label(i, 10);
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) px[((i * c + ch) * h + y) * w + x] = test::fixture_pixel(i, ch, y, x);
  }
  InMemoryDataset::Info info;
  for (int k = 0; k < 10; ++k) info.class_names.push_back("class" + std::to_string(k));
  info.norm = {"test", std::vector<float>(c, 0.5f), std::vector<float>(c, 0.25f)};
  info.source = "synthetic";
  return std::make_shared<InMemoryDataset>(std::move(px), std::move(labels), c, h, w, std::move(info));
}

TransformConfig augmenting(const Dataset& ds) {
  TransformConfig t = train_transform(ds);
  t.cutout = 3;
  return t;
}

std::vector<Batch> run_epoch(std::shared_ptr<const Dataset> ds, std::shared_ptr<Sampler> sampler, int workers,
                             int64_t epoch, int64_t batch_size = 7, bool drop_last = false) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.workers = workers;
  o.seed = 1234;
  o.drop_last = drop_last;
  Loader loader(ds, Transform(augmenting(*ds), ds->channels(), ds->height(), ds->width()), sampler, o);
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

}  // namespace

TEST(Loader, BatchesAreIdenticalWithOneAndThreeWorkers) {
  auto ds = synthetic(50);
  auto sampler = std::make_shared<ShuffledSampler>(ds->size(), 99);
  auto one = run_epoch(ds, sampler, 1, 3);
  auto three = run_epoch(ds, sampler, 3, 3);
  ASSERT_EQ(one.size(), 8u);  // 50 = 7 * 7 + 1
  ASSERT_EQ(three.size(), one.size());
  for (size_t k = 0; k < one.size(); ++k) {
    EXPECT_EQ(one[k].number, static_cast<int64_t>(k));
    EXPECT_EQ(three[k].number, static_cast<int64_t>(k));
    EXPECT_EQ(one[k].indices, three[k].indices) << "batch " << k;
    EXPECT_EQ(one[k].images.to_vector(), three[k].images.to_vector()) << "batch " << k;
    EXPECT_EQ(one[k].labels.to_labels(), three[k].labels.to_labels()) << "batch " << k;
  }
  EXPECT_EQ(one.back().images.size(0), 1);
}

TEST(Loader, BatchContentIsTheTransformOfTheSampledInstances) {
  auto ds = synthetic(20);
  auto batches = run_epoch(ds, std::make_shared<SequentialSampler>(ds->size()), 2, 5);
  Transform t(augmenting(*ds), 3, 8, 8);
  std::vector<float> expect(3 * 8 * 8);
  int64_t seen = 0;
  for (const auto& b : batches) {
    ASSERT_EQ(b.images.shape(), (Shape{static_cast<int64_t>(b.indices.size()), 3, 8, 8}));
    std::vector<float> got = b.images.to_vector();
    std::vector<int32_t> labels = b.labels.to_labels();
    for (size_t j = 0; j < b.indices.size(); ++j) {
      EXPECT_EQ(b.indices[j], seen) << "sequential order";
      t.apply(ds->pixels(seen), expect.data(), 1234, 5, seen);
      EXPECT_TRUE(std::equal(expect.begin(), expect.end(), got.begin() + j * expect.size())) << "instance " << seen;
      EXPECT_EQ(labels[j], ds->label(seen));
      ++seen;
    }
  }
  EXPECT_EQ(seen, 20);
}

TEST(Loader, DropLastSkipsThePartialBatch) {
  auto ds = synthetic(50);
  auto batches = run_epoch(ds, std::make_shared<SequentialSampler>(50), 2, 0, 7, true);
  ASSERT_EQ(batches.size(), 7u);
  for (const auto& b : batches) EXPECT_EQ(b.images.size(0), 7);
}

TEST(Loader, FollowsACustomSamplerOrderIncludingRepeats) {
  auto ds = synthetic(10);
  std::vector<int64_t> order = {9, 0, 9, 3, 3, 1};
  auto batches = run_epoch(ds, std::make_shared<ListSampler>(order), 3, 0, 4);
  ASSERT_EQ(batches.size(), 2u);
  std::vector<int64_t> got = batches[0].indices;
  got.insert(got.end(), batches[1].indices.begin(), batches[1].indices.end());
  EXPECT_EQ(got, order);
}

TEST(Loader, SamplerIndexOutsideTheDatasetIsAnError) {
  auto ds = synthetic(10);
  LoaderOptions o;
  o.batch_size = 4;
  Loader loader(ds, Transform(eval_transform(*ds), 3, 8, 8), std::make_shared<ListSampler>(std::vector<int64_t>{1, 10}),
                o);
  EXPECT_THROW(loader.start_epoch(0), Error);
}

namespace {
// A dataset whose instance 13 cannot be read (like a corrupt image file).
class FailingDataset : public Dataset {
 public:
  explicit FailingDataset(int64_t n) {
    c_ = 1, h_ = 4, w_ = 4;
    labels_.assign(static_cast<size_t>(n), 0);
    class_names_ = {"only"};
    norm_ = {"t", {0.5f}, {0.5f}};
    source_ = "failing";
  }
  void read(int64_t i, uint8_t* out) const override {
    if (i == 13) ISLKD_FAIL("broken.png: cannot decode image");
    std::fill(out, out + 16, uint8_t(i));
  }
};
}  // namespace

TEST(Loader, WorkerErrorSurfacesAtItsBatch) {
  auto ds = std::make_shared<FailingDataset>(40);
  LoaderOptions o;
  o.batch_size = 5;
  o.workers = 3;
  Loader loader(ds, Transform(eval_transform(*ds), 1, 4, 4), std::make_shared<SequentialSampler>(40), o);
  loader.start_epoch(0);
  Batch b;
  EXPECT_TRUE(loader.next(b));
  EXPECT_TRUE(loader.next(b));
  try {
    loader.next(b);  // batch 2 holds instance 13
    FAIL() << "expected the worker's error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos);
  }
}

namespace {
// Counts reads, to see how far ahead of the consumer the workers run.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) {
    c_ = 1, h_ = 2, w_ = 2;
    labels_.assign(static_cast<size_t>(n), 0);
    class_names_ = {"only"};
    norm_ = {"t", {0.5f}, {0.5f}};
    source_ = "counting";
  }
  void read(int64_t, uint8_t* out) const override {
    reads++;
    std::fill(out, out + 4, uint8_t(1));
  }
  mutable std::atomic<int64_t> reads{0};
};
}  // namespace

TEST(Loader, WorkersStayWithinThePrefetchBound) {
  auto ds = std::make_shared<CountingDataset>(1000);
  LoaderOptions o;
  o.batch_size = 10;
  o.workers = 3;
  o.prefetch = 4;
  Loader loader(ds, Transform(eval_transform(*ds), 1, 2, 2), std::make_shared<SequentialSampler>(1000), o);
  // Waits until the count reaches `n` (or 10 s pass), then a little longer to catch any overshoot.
  auto settle = [&](int64_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ds->reads.load() < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return ds->reads.load();
  };
  loader.start_epoch(0);
  EXPECT_EQ(settle(40), 40) << "4 batches of 10 decoded ahead, no more";
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(settle(50), 50) << "taking one batch frees one slot";
}

TEST(Loader, DestructionMidEpochJoinsWorkers) {
  auto ds = synthetic(500);
  for (int workers : {1, 3}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.workers = workers;
    o.prefetch = 2;
    Loader loader(ds, Transform(augmenting(*ds), 3, 8, 8), std::make_shared<SequentialSampler>(500), o);
    loader.start_epoch(0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
  }  // the workers are blocked on a full queue here; the destructor must wake and join them
  SUCCEED();
}

TEST(Loader, RestartingAnEpochAbandonsTheOldOne) {
  auto ds = synthetic(30);
  LoaderOptions o;
  o.batch_size = 4;
  o.workers = 2;
  auto sampler = std::make_shared<ShuffledSampler>(30, 5);
  Loader loader(ds, Transform(augmenting(*ds), 3, 8, 8), sampler, o);
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  loader.start_epoch(1);
  std::vector<int64_t> seen;
  while (loader.next(b)) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  EXPECT_EQ(seen, sampler->indices(1));
}

TEST(Sampler, ShuffleIsAPermutationDeterminedBySeedAndEpoch) {
  ShuffledSampler a(1000, 7), b(1000, 7), c(1000, 8);
  auto e0 = a.indices(0);
  EXPECT_EQ(e0, b.indices(0));
  EXPECT_NE(e0, a.indices(1));
  EXPECT_NE(e0, c.indices(0));
  std::set<int64_t> uniq(e0.begin(), e0.end());
  EXPECT_EQ(uniq.size(), 1000u);
  EXPECT_EQ(*uniq.begin(), 0);
  EXPECT_EQ(*uniq.rbegin(), 999);
}

TEST(Loader, CudaBatchesEqualCpuBatchesOrBackendErrorIsClear) {
  auto ds = synthetic(23);
  std::string why;
  if (!cuda::device_available(&why)) {
    LoaderOptions o;
    o.device = Device::CUDA;
    EXPECT_THROW(Loader(ds, Transform(eval_transform(*ds), 3, 8, 8), std::make_shared<SequentialSampler>(23), o),
                 Error);
    return;
  }
  // A device (or the emulator) exists: the pinned-staging path must deliver exactly the CPU path's batches.
  auto cpu = run_epoch(ds, std::make_shared<ShuffledSampler>(23, 3), 2, 1, 5);
  LoaderOptions o;
  o.batch_size = 5;
  o.workers = 2;
  o.seed = 1234;
  o.device = Device::CUDA;
  Loader loader(ds, Transform(augmenting(*ds), 3, 8, 8), std::make_shared<ShuffledSampler>(23, 3), o);
  loader.start_epoch(1);
  Batch b;
  for (size_t k = 0; k < cpu.size(); ++k) {
    ASSERT_TRUE(loader.next(b));
    cuda::wait_prefetch();
    EXPECT_TRUE(b.images.is_cuda());
    EXPECT_EQ(b.indices, cpu[k].indices);
    EXPECT_EQ(b.images.to_vector(), cpu[k].images.to_vector()) << "batch " << k;
    EXPECT_EQ(b.labels.to_labels(), cpu[k].labels.to_labels()) << "batch " << k;
  }
  EXPECT_FALSE(loader.next(b));
}

// (n + batch - 1) / batch overflowed for a batch size near INT64_MAX: a negative count (an endless epoch) or 0.
// A batch larger than the sampler's list is the whole list in one batch.
TEST(Loader, BatchSizeNearInt64MaxGivesOneBatchOfEverything) {
  auto ds = synthetic(20);
  auto sampler = std::make_shared<SequentialSampler>(ds->size());
  for (int64_t batch : {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max() - 199}) {
    auto batches = run_epoch(ds, sampler, 2, 0, batch);
    ASSERT_EQ(batches.size(), 1u) << batch;
    EXPECT_EQ(batches[0].images.size(0), 20) << batch;
    EXPECT_EQ(batches[0].indices.size(), 20u) << batch;
  }
}
