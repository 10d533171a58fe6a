// The loader alone: augmented CIFAR-sized batches (3x32x32, batch 128, crop + flip + normalise) per second with
// the default worker count, from synthetic in-memory data in the CIFAR-10 binary format. The loader must outrun
// the KD training step by a wide margin (issue 5: at least 5x the resnet56 -> resnet20 step rate at batch 128).
#include <benchmark/benchmark.h>

#include <random>

#include "data/dataset.h"
#include "data/formats.h"
#include "data/loader.h"

using namespace islkd;
using namespace islkd::data;

namespace {

std::shared_ptr<const Dataset> synthetic_cifar10(int64_t n) {
  std::vector<uint8_t> bytes(static_cast<size_t>(n) * 3073);
  std::mt19937 rng(1);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(rng());
  for (int64_t r = 0; r < n; ++r) bytes[static_cast<size_t>(r) * 3073] %= 10;
  RawImages raw;
  parse_cifar(bytes.data(), bytes.size(), "synthetic", 1, 0, 10, raw);
  InMemoryDataset::Info info;
  for (int k = 0; k < 10; ++k) info.class_names.push_back(std::to_string(k));
  info.norm = standard_normalization("cifar10");
  info.source = "synthetic cifar10";
  return std::make_shared<InMemoryDataset>(std::move(raw.pixels), std::move(raw.labels), 3, 32, 32, info);
}

void BM_LoaderCifarBatches(benchmark::State& state) {
  static auto ds = synthetic_cifar10(10000);
  LoaderOptions o;
  o.batch_size = 128;
  o.workers = static_cast<int>(state.range(0));  // 0 = the default
  o.seed = 42;
  Loader loader(ds, Transform(train_transform(*ds), 3, 32, 32), std::make_shared<ShuffledSampler>(ds->size(), 7), o);
  int64_t epoch = 0;
  loader.start_epoch(epoch);
  Batch b;
  for (auto _ : state) {
    if (!loader.next(b)) {
      loader.start_epoch(++epoch);
      loader.next(b);
    }
    benchmark::DoNotOptimize(b.images.data());
  }
  state.counters["batches/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 128, benchmark::Counter::kIsRate);
  state.counters["workers"] = loader.workers();
  // Output bytes per batch: 128 x 3072 floats = 1.5 MiB written, 384 KiB read.
}
BENCHMARK(BM_LoaderCifarBatches)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// One worker's share without threads: the transform alone on one batch.
void BM_TransformCifarBatch(benchmark::State& state) {
  static auto ds = synthetic_cifar10(128);
  const auto* mem = static_cast<const InMemoryDataset*>(ds.get());
  Transform t(train_transform(*ds), 3, 32, 32);
  std::vector<float> out(128 * 3072);
  int64_t epoch = 0;
  for (auto _ : state) {
    for (int64_t i = 0; i < 128; ++i) t.apply(mem->pixels(i), out.data() + i * 3072, 42, epoch, i);
    ++epoch;
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["batches/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TransformCifarBatch)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
