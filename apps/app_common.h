// Code shared by the apps (train, train_kd): the error-catching main wrapper, the optimizer / schedule flags, the
// output claims. The splits, progress line, tally, evaluation and metrics log live in engine/train/run_log.h (the
// Trainer uses them too) and are named here as app:: for the apps. The device comes from engine/device.h.
// Header-only because every apps/<name>.cpp is its own executable.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/app_main.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/lr_schedule.h"
#include "engine/module.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "engine/train/dist.h"
#include "engine/train/run_log.h"
#include "engine/train/trainer.h"
#include "kernels/common/checked.h"
#include "kernels/common/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::app {

using train::compact_list;
using train::count_correct;
using train::EpochTally;
using train::evaluate;
using train::EvalResult;
using train::fixed;
using train::format_duration;
using train::meta_get;
using train::MetricsLog;
using train::open_splits;
using train::parse_count;
using train::parse_int;
using train::ProgressLine;
using train::sequential_loader;
using train::Splits;
using train::Stopwatch;

// Numeric flag checks that refuse nan and inf and print their bounds compactly (CLI11's NonNegativeNumber prints
// its range as 300 digits and lets nan through): "--lr: -1 is not a finite number >= 0".
inline CLI::Validator number_in(double lo, bool lo_inclusive, double hi) {
  std::ostringstream desc;
  desc << "NUMBER " << (lo_inclusive ? ">= " : "> ") << lo;
  if (std::isfinite(hi)) desc << " and <= " << hi;
  const std::string what = desc.str().substr(7);
  return CLI::Validator(
      [lo, lo_inclusive, hi, what](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v)) return "'" + in + "' is not a number";
        if (!std::isfinite(v) || v < lo || (!lo_inclusive && v == lo) || v > hi)
          return in + " is not a finite number " + what;
        return std::string();
      },
      desc.str());
}
inline CLI::Validator at_least(double lo) { return number_in(lo, true, HUGE_VAL); }
inline CLI::Validator positive() { return number_in(0, false, HUGE_VAL); }
inline CLI::Validator fraction() { return number_in(0, true, 1); }

// SGD and learning-rate flags, the same in train and train_kd.
struct OptimArgs {
  double lr = 0.05;
  double momentum = 0.9;
  double wd = 5e-4;
  bool nesterov = false;
  std::string schedule = "kd";
  std::vector<double> milestones;
  double gamma = 0.1;
  double min_lr = 0.0;
  double warmup = 0.0;
  double warmup_start = 0.0;

  void add_flags(CLI::App& cli) {
    cli.add_option("--lr", lr, "base learning rate")->check(at_least(0));
    cli.add_option("--momentum", momentum)->check(at_least(0));
    cli.add_option("--wd", wd, "weight decay")->check(at_least(0));
    cli.add_flag("--nesterov", nesterov);
    cli.add_option("--schedule", schedule,
                   "kd (x0.1 at 150/180/210 of 240 epochs, scaled to --epochs) | multistep | cosine | constant");
    cli.add_option("--milestones", milestones, "multistep: epochs where the rate drops (default: the kd ones)");
    cli.add_option("--gamma", gamma, "multistep: factor at each milestone")->check(at_least(0));
    cli.add_option("--min-lr", min_lr, "cosine: floor")->check(at_least(0));
    cli.add_option("--warmup", warmup, "linear warm-up epochs in front of the schedule (0 = none)")
        ->check(at_least(0));
    cli.add_option("--warmup-start", warmup_start, "warm-up: starting fraction of the rate")->check(fraction());
  }
  std::unique_ptr<LRSchedule> make_schedule(int64_t epochs) const {
    ScheduleSpec spec;
    spec.kind = schedule;
    spec.base_lr = lr;
    spec.epochs = epochs;
    spec.milestones = milestones;
    spec.gamma = gamma;
    spec.min_lr = min_lr;
    spec.warmup_epochs = warmup;
    spec.warmup_start_factor = warmup_start;
    return islkd::make_schedule(spec);
  }
  SGDConfig sgd() const {
    SGDConfig c;
    c.lr = static_cast<float>(lr);
    c.momentum = static_cast<float>(momentum);
    c.weight_decay = static_cast<float>(wd);
    c.nesterov = nesterov;
    return c;
  }
};



// The CPU backend's settings for training: --threads (0 = OMP_NUM_THREADS or the library default), and the
// student's activations kept in oneDNN's blocked layout nChw<B>c (ops::set_cpu_blocked_activations; B = 8 on AVX2,
// 16 on AVX-512, or ISLKD_CPU_CHANNEL_BLOCK; same results as plain NCHW within float rounding, no reorder around
// each convolution). The block is resolved here, so a bad ISLKD_CPU_CHANNEL_BLOCK stops the app before any work.
inline void configure_cpu(int threads) {
  ISLKD_CHECK(threads >= 0, "--threads must be >= 0, got ", threads);
  cpu::set_num_threads(threads);
  cpu::activation_block();
  ops::set_cpu_blocked_activations(true);
}


// The files a run writes, checked and locked at start so a bad or busy path fails before any epoch: each must be a
// regular file or not exist yet in an existing directory (check_output_path), no two may be the same path, and
// each is locked for the whole run (OutputLock: a second run writing the same file stops here, naming the first).
// `outputs` are (flag, path) pairs; empty paths (an output not asked for) are skipped. Keep the result alive.
inline std::vector<std::unique_ptr<OutputLock>> claim_outputs(
    const std::vector<std::pair<std::string, std::string>>& outputs) {
  std::vector<std::unique_ptr<OutputLock>> locks;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& [flag, path] = outputs[i];
    if (path.empty()) continue;
    for (size_t j = 0; j < i; ++j)
      ISLKD_CHECK(outputs[j].second != path, outputs[j].first, " and ", flag, " name the same file '", path, "'");
    try {
      check_output_path(path);
      locks.push_back(std::make_unique<OutputLock>(path));
    } catch (const Error& e) {
      ISLKD_FAIL(flag, ": ", e.what());
    }
  }
  return locks;
}



// ---- data-parallel launch (docs/distributed.md) ----

// The world this process belongs to: MPI when started by mpirun (libmpi loaded at run time), else one process. With
// more than one rank, an error on any rank ends all of them (MPI_Abort after its line), the global --batch-size must
// divide by the world size, and ranks other than 0 print nothing on stdout (their errors still reach stderr). A
// collective waiting more than `timeout_seconds` (--dist-timeout; 0: forever) for the other ranks ends the run.
inline std::shared_ptr<dist::Communicator> start_world(int64_t global_batch, double timeout_seconds) {
  std::shared_ptr<dist::Communicator> comm = dist::from_environment();
  if (comm->size() == 1) return comm;
  comm->set_timeout_seconds(timeout_seconds);
  g_after_error = dist::abort_world_after_error;
  ISLKD_CHECK(global_batch % comm->size() == 0, "--batch-size ", global_batch, " is the global batch and must divide "
              "by the world size ", comm->size(), " (each rank takes an equal share): give a multiple of ",
              comm->size());
  if (!comm->is_root()) {
    std::fflush(stdout);
    ISLKD_CHECK(std::freopen("/dev/null", "w", stdout) != nullptr, "rank ", comm->rank(), ": cannot silence stdout");
  }
  return comm;
}

// A rank's file: rank 0 writes `path`; the others write nothing ("") or, with `per_rank` (tests), path.rank<r>.
inline std::string rank_path(const std::string& path, const dist::Communicator& comm, bool per_rank) {
  if (comm.is_root() || path.empty()) return path;
  return per_rank ? path + ".rank" + std::to_string(comm.rank()) : std::string();
}

// --threads for one rank: its share of the machine's (or of --threads) among the ranks on this machine, at least 1.
// OMP_NUM_THREADS, when set, is already per process (mpirun -x OMP_NUM_THREADS=...): it is kept as it is.
inline int rank_threads(int threads, const dist::Communicator& comm) {
  if (comm.size() == 1) return threads;
  if (threads == 0) {
    const char* omp = std::getenv("OMP_NUM_THREADS");
    if (omp && *omp) return 0;
    threads = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  }
  return std::max(1, threads / comm.local_size());
}

// The config line's record of the world: only with more than one rank, so one-process runs keep their config.
inline void record_world(nlohmann::json& config, const dist::Communicator& comm, int64_t global_batch) {
  if (comm.size() == 1) return;
  config["world_size"] = comm.size();
  config["per_rank_batch"] = global_batch / comm.size();
}

// The data-parallel flags (mpirun), the same in train and train_kd.
struct DataParallelArgs {
  std::string grad_allreduce = "auto";         // --grad-allreduce auto|mpi|nccl
  double bucket_mb = train::kDefaultBucketMiB;  // gradient bucket cap
  bool reshard = false;                         // --resume a checkpoint of another world size
  bool sync_bn = false;                         // batch-norm statistics over the global batch
  double dist_timeout = dist::kDefaultTimeoutSeconds;  // --dist-timeout: the hang watchdog (0: off)
  std::string overlap = "on";                           // --overlap-allreduce on|off
};

// bucket_mb_note: appended to --bucket-mb's help (train says there that --batch-size is the global batch).
inline void add_data_parallel_flags(CLI::App& cli, DataParallelArgs& a, const std::string& bucket_mb_note = "") {
  cli.add_option("--grad-allreduce", a.grad_allreduce,
                 "data-parallel gradients: auto (NCCL for --device cuda ranks when libnccl.so.2 loads, else "
                 "MPI through host memory), mpi, or nccl (also with one rank; an error when NCCL cannot load); "
                 "ISLKD_LIBNCCL names another libnccl")
      ->check(CLI::IsMember({"auto", "mpi", "nccl"}));
  cli.add_option("--bucket-mb", a.bucket_mb,
                 "data-parallel (mpirun): gradients are averaged over the ranks in buckets of up to this many MiB "
                 "(DDP's default 25)" + bucket_mb_note)
      ->check(positive());
  cli.add_flag("--reshard", a.reshard,
               "with --resume: continue a checkpoint written on another number of ranks (same global --batch-size)");
  cli.add_flag("--sync-bn", a.sync_bn,
               "data-parallel (mpirun): batch norm takes its statistics over the global batch (every rank's slice; "
               "PyTorch's SyncBatchNorm) instead of each rank's own; for small per-rank batches. Running statistics "
               "then stay equal on every rank");
  cli.add_option("--dist-timeout", a.dist_timeout,
                 "data-parallel (mpirun): a collective that waits this many seconds for the other ranks ends the run "
                 "with an error (a rank hung); 0 waits forever. Longer than rank 0's evaluation and checkpoint at an "
                 "epoch's end, which the others wait for")
      ->check(at_least(0));
  cli.add_option("--overlap-allreduce", a.overlap,
                 "data-parallel (mpirun): on starts each gradient bucket's all-reduce inside the backward, as soon "
                 "as its gradients are final (as PyTorch DDP does); off starts them all after the backward (the "
                 "same result)")
      ->check(CLI::IsMember({"on", "off"}));
}

// Into the Trainer's config. Call it after c.run_config is set: --sync-bn is recorded there, only when given, so
// other configs (and the golden digests) stay unchanged.
inline void apply_data_parallel(const DataParallelArgs& a, train::TrainerConfig& c) {
  c.bucket_bytes = static_cast<int64_t>(a.bucket_mb * 1048576.0);
  c.reshard = a.reshard;
  c.grad_allreduce = train::parse_grad_allreduce(a.grad_allreduce);
  c.sync_batch_norm = a.sync_bn;
  c.overlap_allreduce = a.overlap == "on";
  if (a.sync_bn) c.run_config["sync_bn"] = true;
}

}  // namespace islkd::app
