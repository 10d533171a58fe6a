// `train`: trains one model of the zoo with cross-entropy and SGD on a dataset (Fashion-MNIST by default) —
// the teachers for distillation and the students-alone baselines. Checkpoints each epoch; --resume continues a run
// bit for bit on the CPU (same seed and --threads).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

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
#include "engine/lr_schedule.h"
#include "engine/ops.h"
#include "engine/optim.h"
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
  bool nondeterministic = false;  // CUDA: allow cuDNN algorithms that are not deterministic
};

// Checkpoint metadata keys. Only settings that decide the continuation go in (not the total epoch count, paths
// or timings), so a run of E epochs and a run of E-1 epochs resumed for one more write identical files.
constexpr const char* kFormat = "islkd.train.v1";

using app::EvalResult;
using app::fixed;

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
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    ISLKD_FAIL(e.what());                             // one line, like every other error
  }

  app::configure_cpu(a.threads);
  cuda::set_deterministic_algorithms(!a.nondeterministic);
  const Device device = select_device(a.device, std::cout);
  if (a.out.empty()) a.out = a.model + "_" + a.dataset + ".safetensors";
  ISLKD_CHECK(models::has_model(a.model), "unknown --model '", a.model, "'; run with --help for the zoo");
  const auto output_locks = app::claim_outputs({{"--out", a.out}, {"--metrics", a.metrics}});

  // ---- data ----
  const app::Splits splits = app::open_splits(a.dataset, a.data_path, a.limit, a.test_limit);
  const auto& train_ds = splits.train;
  const int64_t n_train = splits.n_train, n_test = splits.n_test;
  const int64_t num_classes = splits.num_classes, in_channels = splits.in_channels;

  data::TransformConfig tcfg = a.no_augment ? data::eval_transform(*train_ds) : data::train_transform(*train_ds);
  data::LoaderOptions lopt;
  lopt.batch_size = a.batch_size;
  lopt.workers = a.workers;
  lopt.seed = a.seed;
  lopt.device = device;
  data::Loader train_loader(train_ds,
                            data::Transform(tcfg, train_ds->channels(), train_ds->height(), train_ds->width()),
                            std::make_shared<data::ShuffledSampler>(n_train, a.seed), lopt);
  data::Loader test_loader = app::sequential_loader(splits.test, n_test, lopt);
  const int64_t steps_per_epoch = ceil_div(n_train, a.batch_size);

  // ---- model, optimizer, schedule ----
  models::ModelConfig mcfg;
  mcfg.num_classes = num_classes;
  mcfg.in_channels = in_channels;
  mcfg.seed = a.seed;
  std::shared_ptr<Module> model = models::create_model(a.model, mcfg);

  std::unique_ptr<LRSchedule> schedule = a.opt.make_schedule(a.epochs);
  const SGDConfig ocfg = a.opt.sgd();

  // What decides the continuation of a run (recorded in the checkpoint and the log, checked on --resume).
  nlohmann::json run_config = {{"model", a.model},
                               {"dataset", a.dataset},
                               {"num_classes", num_classes},
                               {"in_channels", in_channels},
                               {"train_instances", n_train},
                               {"batch_size", a.batch_size},
                               {"seed", a.seed},
                               {"augment", !a.no_augment},
                               {"optimizer", ocfg.to_json()},
                               {"schedule", schedule->config()}};

  int64_t start_epoch = 0, global_step = 0, opt_steps = 0;
  std::map<std::string, Tensor> opt_state;
  if (!a.resume.empty()) {
    checkpoint::Contents c = checkpoint::load(a.resume, *model);
    ISLKD_CHECK(app::meta_get(c.metadata, "format", a.resume, "train") == kFormat, a.resume, ": checkpoint format '",
                c.metadata.at("format"), "', expected ", kFormat);
    nlohmann::json saved = nlohmann::json::parse(app::meta_get(c.metadata, "config", a.resume, "train"), nullptr, false);
    ISLKD_CHECK(!saved.is_discarded(), a.resume, ": metadata 'config' is not JSON");
    for (const char* key : {"model", "dataset", "num_classes", "in_channels", "train_instances", "batch_size", "seed"})
      ISLKD_CHECK(saved.value(key, nlohmann::json()) == run_config[key], "--resume ", a.resume, ": it was trained with ",
                  key, " = ", saved.value(key, nlohmann::json()).dump(), ", this run has ", run_config[key].dump());
    start_epoch = app::parse_count(app::meta_get(c.metadata, "epoch", a.resume, "train"), a.resume + ": metadata 'epoch'");
    global_step = app::parse_count(app::meta_get(c.metadata, "step", a.resume, "train"), a.resume + ": metadata 'step'");
    opt_steps = app::parse_count(app::meta_get(c.metadata, "optimizer.steps", a.resume, "train"), a.resume + ": 'optimizer.steps'");
    const int64_t per_epoch = ceil_div(n_train, a.batch_size);
    ISLKD_CHECK(global_step == start_epoch * per_epoch && opt_steps == global_step, a.resume,
                ": inconsistent counts (epoch ", start_epoch, ", step ", global_step, ", optimizer.steps ", opt_steps,
                " with ", per_epoch, " steps per epoch): a tampered or corrupt checkpoint");
    ISLKD_CHECK(start_epoch < a.epochs, "--resume ", a.resume, " has already trained ", start_epoch,
                " epochs; pass --epochs larger than that to continue");
    for (const auto& e : c.extra) {
      ISLKD_CHECK(e.dtype == safetensors::DType::F32, a.resume, ": '", e.name, "' is not float32");
      opt_state[e.name] = Tensor::from_vector(e.f32, e.shape.empty() ? Shape{1} : Shape(e.shape));
    }
  }
  model->to(device);
  SGD optimizer(model->named_parameters(), ocfg);
  if (!a.resume.empty()) optimizer.load_state(opt_state, opt_steps);

  std::printf("train: %s (%lld parameters) on %s: %lld train / %lld test instances, %lld classes, %dx%dx%d, "
              "device %s, %d threads, %d loader workers\n",
              a.model.c_str(), static_cast<long long>(model->num_parameters()), train_ds->source().c_str(),
              static_cast<long long>(n_train), static_cast<long long>(n_test), static_cast<long long>(num_classes),
              train_ds->channels(), train_ds->height(), train_ds->width(), device_name(device), cpu::num_threads(),
              train_loader.workers());
  std::printf("train: config %s\n", run_config.dump().c_str());
  if (start_epoch > 0)
    std::printf("train: resuming %s after epoch %lld (step %lld)\n", a.resume.c_str(),
                static_cast<long long>(start_epoch), static_cast<long long>(global_step));
  std::fflush(stdout);

  app::MetricsLog metrics(a.metrics, run_config, start_epoch);

  // ---- training ----
  model->train();
  app::ProgressLine progress;
  app::Stopwatch run_clock;
  double train_seconds = 0.0, eval_seconds_last = 0.0;
  int64_t steps_timed = 0;
  for (int64_t epoch = start_epoch; epoch < a.epochs; ++epoch) {
    app::Stopwatch epoch_clock;
    train_loader.start_epoch(epoch);
    app::EpochTally tally;
    int64_t step = 0;
    data::Batch b;
    while (train_loader.next(b)) {
      if (device == Device::CUDA) cuda::wait_prefetch();
      const double lr = schedule->lr_at_step(epoch, step, steps_per_epoch);
      optimizer.set_lr(static_cast<float>(lr));
      optimizer.zero_grad();
      Tensor logits = (*model)(b.images);
      Tensor loss = ops::cross_entropy(logits, b.labels);
      loss.backward();
      optimizer.step();

      tally.add(loss, logits, b.labels, epoch, step);
      ++step;
      ++global_step;

      const double t = epoch_clock.seconds();
      const double per_step = (train_seconds + t) / static_cast<double>(steps_timed + step);
      const double remaining =
          per_step * (static_cast<double>(steps_per_epoch - step) +
                      static_cast<double>(steps_per_epoch) * static_cast<double>(a.epochs - epoch - 1)) +
          eval_seconds_last * static_cast<double>(a.epochs - epoch);
      progress.update("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(a.epochs) + " [" +
                      std::to_string(step) + "/" + std::to_string(steps_per_epoch) + "] loss " +
                      fixed(tally.mean_loss(), 4) + " acc " + fixed(tally.accuracy(), 2) + "% lr " + fixed(lr, 5) +
                      " " + fixed(static_cast<double>(tally.seen) / t, 0) + " img/s ETA " +
                      app::format_duration(remaining));
    }
    const double epoch_train_seconds = epoch_clock.seconds();
    train_seconds += epoch_train_seconds;
    steps_timed += step;

    app::Stopwatch eval_clock;
    EvalResult test = app::evaluate(*model, test_loader, device);
    eval_seconds_last = eval_clock.seconds();

    const double train_loss = tally.mean_loss(), train_acc = tally.accuracy();
    nlohmann::json meta_config = run_config;
    std::map<std::string, std::string> meta = {{"format", kFormat},
                                               {"config", meta_config.dump()},
                                               {"epoch", std::to_string(epoch + 1)},
                                               {"step", std::to_string(global_step)},
                                               {"optimizer.steps", std::to_string(optimizer.step_count())},
                                               {"test_accuracy", fixed(test.accuracy, 4)}};
    std::vector<safetensors::Entry> extra;
    for (auto& [name, t] : optimizer.state_tensors())
      extra.push_back(safetensors::Entry::from_f32(name, t.shape(), t.to_vector()));
    checkpoint::save(a.out, *model, extra, meta);

    const double remaining = (train_seconds / static_cast<double>(steps_timed)) *
                                 static_cast<double>(steps_per_epoch) * static_cast<double>(a.epochs - epoch - 1) +
                             eval_seconds_last * static_cast<double>(a.epochs - epoch - 1);
    progress.clear();
    std::printf("epoch %lld/%lld  loss %.4f  train acc %.2f%%  test loss %.4f  test acc %.2f%%  lr %.5f  "
                "%.0f img/s  %s (+%s eval)  ETA %s\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(a.epochs), train_loss, train_acc, test.loss,
                test.accuracy, schedule->lr_at_step(epoch, steps_per_epoch - 1, steps_per_epoch),
                static_cast<double>(tally.seen) / epoch_train_seconds, app::format_duration(epoch_train_seconds).c_str(),
                app::format_duration(eval_seconds_last).c_str(), app::format_duration(remaining).c_str());
    std::fflush(stdout);

    metrics.append({{"epoch", epoch + 1},
                    {"step", global_step},
                    {"lr_last", schedule->lr_at_step(epoch, steps_per_epoch - 1, steps_per_epoch)},
                    {"train_loss", train_loss},
                    {"train_accuracy", train_acc},
                    {"test_loss", test.loss},
                    {"test_accuracy", test.accuracy},
                    {"train_seconds", epoch_train_seconds},
                    {"eval_seconds", eval_seconds_last},
                    {"images_per_second", static_cast<double>(tally.seen) / epoch_train_seconds}});
  }
  std::printf("train: done in %s; checkpoint %s\n", app::format_duration(run_clock.seconds()).c_str(),
              a.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return app::guarded_main("train", [&] { return run(argc, argv); });
}
