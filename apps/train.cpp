// `train`: trains one model of the zoo with cross-entropy and SGD on a dataset (Fashion-MNIST by default) —
// the teachers for distillation and the students-alone baselines. Flags -> a TrainerConfig (objective ce, no
// curriculum) -> engine/train's Trainer. Checkpoints each epoch; --resume continues a run bit for bit on the CPU
// (same seed and --threads).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/app_common.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/distill/objective.h"
#include "engine/lr_schedule.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/train/trainer.h"
#include "models/registry.h"

using namespace islkd;

namespace {

struct Args {
  std::string model = "resnet20";
  std::string dataset = "fashion-mnist";
  std::string data_path;
  int64_t epochs = 15;
  int64_t batch_size = 128;
  app::OptimArgs opt;
  uint64_t seed = 0;
  std::string device = "auto";
  int threads = 0;
  int workers = 0;
  std::string out;
  std::string resume;
  std::string metrics;
  int64_t limit = 0;
  int64_t test_limit = 0;
  bool no_augment = false;
  int image_size = 0;  // ImageFolder of any size, read as S x S (0 = as stored)
  std::string normalization;  // a name of data::standard_normalization; empty = the dataset format's own
  bool nondeterministic = false;  // CUDA: allow cuDNN algorithms that are not deterministic
  app::DataParallelArgs dp;  // mpirun: --grad-allreduce, --bucket-mb, --reshard, --sync-bn
};

// Checkpoint metadata keys. Only settings that decide the continuation go in (not the total epoch count, paths
// or timings), so a run of E epochs and a run of E-1 epochs resumed for one more write identical files.
constexpr const char* kFormat = "islkd.train.v1";

int run(int argc, char** argv) {
  Args a;
  CLI::App cli{"train: trains a model of the zoo with cross-entropy and SGD (Fashion-MNIST by default)"};
  cli.option_defaults()->always_capture_default();
  cli.add_option("--model", a.model, "model name (" + std::to_string(models::model_names().size()) +
                                         " in the zoo, e.g. resnet8, resnet20, resnet32x4, wrn_40_2, vgg13, "
                                         "MobileNetV2, ShuffleV2)");
  cli.add_option("--dataset,--data-format", a.dataset,
                 "fashion-mnist | mnist | idx | cifar10 | cifar100 | svhn | cinic10 | imagefolder");
  cli.add_option("--data-path", a.data_path, "dataset directory (empty: Fashion-MNIST from Debian's package)");
  cli.add_option("--image-size", a.image_size,
                 "imagefolder/cinic10 with images of any size: train on RandomResizedCrop(S) + flip, evaluate on "
                 "the centre S x S after resizing the shorter side to round(S/0.875) (0 = images as stored, all "
                 "of the first image's size)")
      ->check(CLI::Range(0, 4096));
  cli.add_option("--normalization", a.normalization,
                 "normalise the images with this mean/std instead of the dataset format's own (" +
                     data::known_normalizations() + "; imagenet for teachers converted from torchvision)");
  cli.add_option("--epochs", a.epochs, "total epochs (with --resume: up to this many)")->check(CLI::PositiveNumber);
  cli.add_option("--batch-size", a.batch_size,
                 "instances per step (larger than the split: the whole split in one step)")
      ->check(CLI::PositiveNumber);
  a.opt.add_flags(cli);
  cli.add_option("--seed", a.seed, "weight init, shuffling and augmentation");
  cli.add_option("--device", a.device, "auto | cpu | cuda");
  cli.add_option("--threads", a.threads, "CPU threads (0 = OMP_NUM_THREADS or all cores)")
      ->check(app::at_least(0));
  cli.add_option("--workers", a.workers, "loader threads (0 = default)")->check(app::at_least(0));
  cli.add_option("--out", a.out, "checkpoint written each epoch (default <model>_<dataset>.safetensors)");
  cli.add_option("--resume", a.resume, "checkpoint of an earlier run to continue");
  cli.add_option("--metrics", a.metrics, "JSON-lines file with one line of metrics per epoch");
  cli.add_option("--limit", a.limit, "train on the first N instances only (0 = all)")->check(app::at_least(0));
  cli.add_option("--test-limit", a.test_limit, "evaluate on the first N test instances only (0 = all)")
      ->check(app::at_least(0));
  cli.add_flag("--nondeterministic", a.nondeterministic,
               "CUDA: also use cuDNN algorithms that are not deterministic (may be faster; runs are then not "
               "bit-reproducible on the same GPU)");
  cli.add_flag("--no-augment", a.no_augment, "no random crop / flip (normalisation only)");
  app::add_data_parallel_flags(cli, a.dp, "; --batch-size is then the global batch");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    ISLKD_FAIL(e.what());                             // one line, like every other error
  }
  if (!a.normalization.empty()) data::standard_normalization(a.normalization);  // a bad name fails before the data

  // The world of ranks (mpirun): rank 0 alone prints and writes; --batch-size is the global batch.
  const std::shared_ptr<dist::Communicator> comm = app::start_world(a.batch_size, a.dp.dist_timeout);
  app::configure_cpu(app::rank_threads(a.threads, *comm));
  cuda::set_deterministic_algorithms(!a.nondeterministic);
  const Device device = select_device(a.device, std::cout);
  if (device == Device::CUDA && comm->size() > 1) cuda::set_device(comm->local_rank());  // one GPU per rank
  if (a.out.empty()) a.out = a.model + "_" + a.dataset + ".safetensors";
  ISLKD_CHECK(models::has_model(a.model), "unknown --model '", a.model, "'; run with --help for the zoo");
  if (!comm->is_root()) a.out.clear(), a.metrics.clear();
  const auto output_locks = app::claim_outputs({{"--out", a.out}, {"--metrics", a.metrics}});

  // ---- data ----
  const app::Splits splits = app::open_splits(a.dataset, a.data_path, a.limit, a.test_limit, a.image_size, a.normalization);

  // ---- flags -> the Trainer's parts and config ----
  train::TrainerParts p;
  models::ModelConfig mcfg;
  mcfg.num_classes = splits.num_classes;
  mcfg.in_channels = splits.in_channels;
  mcfg.seed = a.seed;
  p.student = models::create_model(a.model, mcfg);
  p.objective = distill::make_objective("ce");
  const app::OptimArgs opt = a.opt;
  p.make_schedule = [opt](int64_t epochs) { return opt.make_schedule(epochs); };
  p.sgd = a.opt.sgd();
  p.train = splits.train, p.test = splits.test;
  p.n_train = splits.n_train, p.n_test = splits.n_test, p.num_classes = splits.num_classes;
  p.train_transform = a.no_augment ? data::eval_transform(*splits.train) : data::train_transform(*splits.train);
  p.loader_options.batch_size = a.batch_size / comm->size();
  p.loader_options.workers = a.workers;
  p.loader_options.seed = a.seed;
  p.loader_options.device = device;

  train::TrainerConfig c;
  c.style = train::ReportStyle::Train;
  c.format = kFormat;
  c.epochs = a.epochs;
  c.device = device;
  c.out = a.out;
  c.metrics = a.metrics;
  c.resume = a.resume;
  c.comm = comm;
  // What decides the continuation of a run (recorded in the checkpoint and the log, checked on --resume).
  c.run_config = {{"model", a.model},
                  {"dataset", a.dataset},
                  {"num_classes", splits.num_classes},
                  {"in_channels", splits.in_channels},
                  {"train_instances", splits.n_train},
                  {"batch_size", a.batch_size},
                  {"seed", a.seed},
                  {"augment", !a.no_augment},
                  {"optimizer", p.sgd.to_json()},
                  {"schedule", a.opt.make_schedule(a.epochs)->config()}};
  if (a.image_size > 0) c.run_config["image_size"] = a.image_size;  // absent otherwise: older logs stay identical
  if (!a.normalization.empty()) c.run_config["normalization"] = a.normalization;  // likewise
  app::record_world(c.run_config, *comm, a.batch_size);
  app::apply_data_parallel(a.dp, c);
  c.resume_keys = {"model",           "dataset",    "num_classes", "in_channels",
                   "train_instances", "batch_size", "seed",        "image_size",
                   "normalization"};
  c.data_description = train::describe_data(*splits.train);
  train::Trainer trainer(std::move(c), std::move(p));
  const std::atomic<bool> never{false};
  trainer.run(never);
  std::fflush(stdout);
  comm->finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return app::guarded_main("train", [&] { return run(argc, argv); });
}
