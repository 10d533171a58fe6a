// Data-parallel train_kd under `mpirun -np 2 --oversubscribe` on loopback, CPU ranks of 1 thread (issue 16): the
// ranks' parameters stay bit-equal, a 2-rank step matches the 1-rank step (within the per-rank batch norm's
// difference; with --sync-bn within float rounding), the ranks' batches are the 1-rank batches in rank order (ISL's
// order included), and a 2-rank ISL run resumes on 2 ranks and is refused on 1. Skipped, saying so, where mpirun is
// absent. Label `mpi`.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "models/registry.h"
#include "tests/mpi/mpi_util.h"

using namespace islkd;
using namespace islkd::mpi_test;

namespace {

const std::string kExe = std::string(ISLKD_BINARY_DIR) + "/apps/train_kd";
const std::string kTrainExe = std::string(ISLKD_BINARY_DIR) + "/apps/train";

// `ranks` 0: the app as one plain process; else under mpirun_on_loopback; 120 s at most.
AppRun run_app(const std::string& exe, int ranks, const std::string& args, const std::string& tag) {
  const std::string launch = ranks > 0 ? mpirun_on_loopback(ranks, 120) + " " + exe : "timeout 120 " + exe;
  return run_in_folder(launch + " " + args, "mpi_" + tag);
}

AppRun run_kd(int ranks, const std::string& args, const std::string& tag) { return run_app(kExe, ranks, args, tag); }

std::string base_args(const std::string& teacher) {
  return "--model resnet8 --teacher " + teacher +
         " --teacher-model resnet8 --test-limit 32 --threads 1 --device cpu --seed 7 --workers 1 ";
}

// Steps of a --trace-batches file: "epoch step i0 i1 ..." -> the indices, keyed by (epoch, step).
std::map<std::pair<int, int>, std::vector<long>> trace_of(const std::string& path) {
  std::map<std::pair<int, int>, std::vector<long>> t;
  std::istringstream in(read_text(path));
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    int e = 0, s = 0;
    l >> e >> s;
    std::vector<long> v;
    for (long i; l >> i;) v.push_back(i);
    t[{e, s}] = v;
  }
  return t;
}

}  // namespace

// N steps on 2 ranks, the last batch of each epoch uneven (200 = 6 x 32 + 8): both ranks end with the same
// parameters, momentum and batch-norm statistics, bit for bit; the config line records the world.
TEST(TrainKdMpi, TwoRanksKeepEveryTensorBitEqual) {
  SKIP_WITHOUT_MPIRUN();
  const std::string out = dir() + "/islkd_mpi_equal.safetensors";
  AppRun r = run_kd(2, base_args(make_teacher()) + "--method kd --limit 200 --batch-size 32 --epochs 2 --rank-outputs "
                 "--out " + out, "equal");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("data-parallel over 2 ranks (mpi): global batch 32 = 2 x 16 per rank"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"world_size\":2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"per_rank_batch\":16"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("train_kd[kd]: student"), r.out.rfind("train_kd[kd]: student")) << "rank 0 alone prints";
  expect_same_tensors(out, out + ".rank1");
}

// One KD step at global batch 128: 2 ranks x 64 against 1 process x 128. The gradient all-reduce is a mean of the two
// halves' mean gradients, equal to the whole batch's within float rounding (~1e-7 relative); what differs is batch
// norm, which (as in DDP without SyncBatchNorm) normalises each rank's 64 with their own mean and variance instead
// of the 128's. The step's gradient (the first momentum buffer: gradient + weight decay x weight) then differs by
// the sampling noise of 64-instance statistics. Measured on this setting (relative L2): 3.5% over all tensors, 19% at
// worst (layer1.0.conv1.weight: the first layers' gradients pass back through every batch norm). Bounded here at 10%
// overall and 40% per tensor, and the difference must not be 0 (that would mean the ranks did not split the batch).
// --sync-bn turns this into a float-rounding tolerance (TwoRankStepWithSyncBnMatchesTheOneRankStep).
TEST(TrainKdMpi, TwoRankStepMatchesTheOneRankStepUpToPerRankBatchNorm) {
  SKIP_WITHOUT_MPIRUN();
  const std::string teacher = make_teacher();
  const std::string one = dir() + "/islkd_mpi_step1.safetensors", two = dir() + "/islkd_mpi_step2.safetensors";
  const std::string args = base_args(teacher) + "--method kd --limit 128 --batch-size 128 --epochs 1 --out ";
  AppRun a = run_kd(0, args + one, "step1");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  AppRun b = run_kd(2, args + two, "step2");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  auto t1 = tensors_of(one), t2 = tensors_of(two);
  double worst = 0.0, sum_diff = 0.0, sum_ref = 0.0;
  std::string worst_name;
  int compared = 0;
  for (const auto& [name, e] : t1) {
    if (name.find("momentum") == std::string::npos) continue;
    const auto& f = t2.at(name);
    ASSERT_EQ(f.f32.size(), e.f32.size()) << name;
    double d = 0.0, n = 0.0;
    for (size_t i = 0; i < e.f32.size(); ++i) {
      d += (double(f.f32[i]) - e.f32[i]) * (double(f.f32[i]) - e.f32[i]);
      n += double(e.f32[i]) * e.f32[i];
    }
    sum_diff += d, sum_ref += n;
    const double rel = std::sqrt(d / std::max(n, 1e-30));
    if (rel > worst) worst = rel, worst_name = name;
    ++compared;
  }
  ASSERT_GT(compared, 10);
  const double overall = std::sqrt(sum_diff / sum_ref);
  std::printf("2-rank vs 1-rank step: relative L2 difference of the gradients: overall %.4f, worst %.4f (%s)\n",
              overall, worst, worst_name.c_str());
  EXPECT_LT(overall, 0.10);
  EXPECT_LT(worst, 0.40) << worst_name;
  EXPECT_GT(overall, 1e-5) << "per-rank batch norm must show (the ranks split the batch)";
}

// Relative L2 distance of each tensor of `b` from `a` whose name contains `part`; prints and returns the overall and
// the worst.
struct Distance {
  double overall = 0.0, worst = 0.0;
  std::string worst_name;
  int compared = 0;
};
Distance relative_l2(const std::string& a, const std::string& b, const std::string& part) {
  auto t1 = tensors_of(a), t2 = tensors_of(b);
  Distance r;
  double sum_diff = 0.0, sum_ref = 0.0;
  for (const auto& [name, e] : t1) {
    if (name.find(part) == std::string::npos || e.f32.empty()) continue;
    const auto& f = t2.at(name);
    if (f.f32.size() != e.f32.size()) {
      ADD_FAILURE() << name << ": " << f.f32.size() << " vs " << e.f32.size() << " values";
      continue;
    }
    double d = 0.0, n = 0.0;
    for (size_t i = 0; i < e.f32.size(); ++i) {
      d += (double(f.f32[i]) - e.f32[i]) * (double(f.f32[i]) - e.f32[i]);
      n += double(e.f32[i]) * e.f32[i];
    }
    sum_diff += d, sum_ref += n;
    const double rel = std::sqrt(d / std::max(n, 1e-30));
    if (rel > r.worst) r.worst = rel, r.worst_name = name;
    ++r.compared;
  }
  r.overall = std::sqrt(sum_diff / std::max(sum_ref, 1e-30));
  std::printf("  %-13s relative L2: overall %.3g, worst %.3g (%s) over %d tensors\n", part.c_str(), r.overall, r.worst,
              r.worst_name.c_str(), r.compared);
  return r;
}

// The same step as above with --sync-bn on the 2 ranks: every batch norm normalises by the 128's statistics (the
// ranks' count/mean/M2 all-gathered and merged) and its backward's two sums are the 128's, so the step's gradient is
// the 1-rank step's up to float rounding (the halves' partial sums add in another order). This step's gradient is
// sensitive to rounding (sums with much cancellation, e.g. a BN bias's sum of dy): the *same one-process step* run
// with 2 threads instead of 1 moves it by 2.4e-5 overall / 1.4e-4 worst tensor, with nChw8c instead of nChw16c by
// 5.4e-5 / 4.9e-4. Measured here: 1.3e-4 overall, 1.2e-3 worst (layer2.0.bn2.bias, = downsample.1.bias's: one dy),
// 270x / 150x under the per-rank batch norm's 3.5% / 19%; bounded at 5e-4 and 5e-3. The running statistics are the
// 128's (1-rank within 8.4e-7 relative, measured) and the same bits on both ranks without any broadcast, like every
// other tensor. In one process --sync-bn leaves every tensor of the step bit-equal.
TEST(TrainKdMpi, TwoRankStepWithSyncBnMatchesTheOneRankStep) {
  SKIP_WITHOUT_MPIRUN();
  const std::string teacher = make_teacher();
  const std::string one = dir() + "/islkd_mpi_sync1.safetensors", two = dir() + "/islkd_mpi_sync2.safetensors";
  const std::string args = base_args(teacher) + "--method kd --limit 128 --batch-size 128 --epochs 1 ";
  AppRun a = run_kd(0, args + "--out " + one, "sync1");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  AppRun b = run_kd(2, args + "--sync-bn --rank-outputs --out " + two, "sync2");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  // One process: --sync-bn is the same computation (a 1-replica merge is the identity), bit for bit.
  const std::string one_sync = dir() + "/islkd_mpi_sync1s.safetensors";
  AppRun c = run_kd(0, args + "--sync-bn --out " + one_sync, "sync1s");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  expect_same_tensors(one, one_sync);
  EXPECT_NE(b.out.find("\"sync_bn\":true"), std::string::npos) << b.out;
  EXPECT_EQ(a.out.find("sync_bn"), std::string::npos) << "recorded only when set";
  expect_same_tensors(two, two + ".rank1");  // running statistics included: no broadcast under --sync-bn
  std::printf("2-rank --sync-bn step vs 1-rank step:\n");
  const Distance grad = relative_l2(one, two, "momentum");
  ASSERT_GT(grad.compared, 10);
  EXPECT_LT(grad.overall, 5e-4);
  EXPECT_LT(grad.worst, 5e-3) << grad.worst_name;
  const Distance mean = relative_l2(one, two, "running_mean"), var = relative_l2(one, two, "running_var");
  ASSERT_GT(mean.compared, 5);
  EXPECT_LT(mean.worst, 1e-5) << mean.worst_name;
  EXPECT_LT(var.worst, 1e-5) << var.worst_name;
}

// ISL with --sync-bn on 2 ranks runs through its warm-up and phases (epochs of 100 and of the easiest half, uneven
// last batches: 100 = 3 x 32 + 4) and both ranks end with the same tensors. A training set whose last global batch
// has fewer instances than ranks (97 = 3 x 32 + 1) is refused on every rank with one line, not hung in a collective.
TEST(TrainKdMpi, IslRunWithSyncBnKeepsRanksEqual) {
  SKIP_WITHOUT_MPIRUN();
  const std::string out = dir() + "/islkd_mpi_isl_sync.safetensors";
  const std::string args = base_args(make_teacher()) + "--method isl --batch-size 32 --epochs 3 --sync-bn ";
  AppRun r = run_kd(2, args + "--limit 100 --rank-outputs --out " + out, "isl_sync");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"sync_bn\":true"), std::string::npos) << r.out;
  expect_same_tensors(out, out + ".rank1");
  AppRun refused = run_kd(2, args + "--limit 97 --out " + dir() + "/islkd_mpi_isl_sync97.safetensors", "isl_sync97");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("--sync-bn: the training split's 97 instances end in a global batch of 1"),
            std::string::npos)
      << refused.err;
}

// ISL with the default measure (teacher-ce): the teacher-logit cache is computed in 2 shards (50 instances each) and
// all-gathered, every rank sorts the same scores, so the ranks' batches are the 1-rank run's batches cut in two,
// step by step, in every epoch (warm-up, the easiest-half phase, the rest); the curriculum's order in the
// checkpoints is the same on both ranks and equal to the 1-rank order. 100 = 3 x 32 + 4.
TEST(TrainKdMpi, RankBatchesAreTheOneRankBatchesInRankOrder) {
  SKIP_WITHOUT_MPIRUN();
  const std::string teacher = make_teacher();
  const std::string one = dir() + "/islkd_mpi_order1", two = dir() + "/islkd_mpi_order2";
  const std::string args = base_args(teacher) + "--method isl --limit 100 --batch-size 32 --epochs 3 ";
  AppRun a = run_kd(0, args + "--out " + one + ".safetensors --trace-batches " + one + ".trace", "order1");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  AppRun b = run_kd(2, args + "--rank-outputs --out " + two + ".safetensors --trace-batches " + two + ".trace", "order2");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  EXPECT_NE(b.out.find("teacher logits of 100 un-augmented training instances cached in"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("(2 shards, all-gathered)"), std::string::npos) << b.out;
  const auto t1 = trace_of(one + ".trace"), r0 = trace_of(two + ".trace"), r1 = trace_of(two + ".trace.rank1");
  ASSERT_FALSE(t1.empty());
  EXPECT_EQ(r0.size(), t1.size());
  for (const auto& [key, batch] : t1) {
    std::vector<long> joined = r0.count(key) ? r0.at(key) : std::vector<long>{};
    if (r1.count(key)) joined.insert(joined.end(), r1.at(key).begin(), r1.at(key).end());
    EXPECT_EQ(joined, batch) << "epoch " << key.first << " step " << key.second;
  }
  const auto order1 = tensors_of(one + ".safetensors").at("curriculum.order").i64;
  EXPECT_EQ(tensors_of(two + ".safetensors").at("curriculum.order").i64, order1);
  EXPECT_EQ(tensors_of(two + ".safetensors.rank1").at("curriculum.order").i64, order1);
  expect_same_tensors(two + ".safetensors", two + ".safetensors.rank1");
}

// A 2-rank ISL run stopped mid-epoch resumes on 2 ranks to the uninterrupted run's tensors bit for bit; the same
// checkpoint is refused by one process with a message naming both world sizes.
TEST(TrainKdMpi, IslRunResumesOnTwoRanksAndIsRefusedOnOne) {
  SKIP_WITHOUT_MPIRUN();
  const std::string teacher = make_teacher();
  const std::string full = dir() + "/islkd_mpi_full.safetensors", cut = dir() + "/islkd_mpi_cut.safetensors";
  const std::string args = base_args(teacher) + "--method isl --limit 96 --batch-size 32 --epochs 3 ";
  AppRun a = run_kd(2, args + "--out " + full, "full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  AppRun b = run_kd(2, args + "--interrupt-after-steps 4 --out " + cut, "cut");
  ASSERT_NE(b.exit_code, 0) << "an interrupted run exits 130";
  ASSERT_NE(b.out.find("interrupted in epoch 2 after step 1"), std::string::npos) << b.out << b.err;
  AppRun refused = run_kd(0, args + "--resume " + cut + " --out " + dir() + "/islkd_mpi_refused.safetensors", "refused");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("was written by a run on 2 ranks, this run has 1"), std::string::npos) << refused.err;
  AppRun c = run_kd(2, args + "--resume " + cut + " --out " + cut, "resume");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  expect_same_tensors(full, cut);
}

// --reshard: the 2-rank checkpoint cut mid-epoch continues in one process, and a one-process checkpoint on 2 ranks.
// The global batch is the same, so the resumed steps train the uninterrupted run's batches (joined over the ranks)
// in its order, from the step after the cut, and the step count ends where the uninterrupted run's does.
TEST(TrainKdMpi, ReshardContinuesAnotherWorldSizesCheckpointOnTheSameBatches) {
  SKIP_WITHOUT_MPIRUN();
  const std::string teacher = make_teacher();
  const std::string base = dir() + "/islkd_mpi_reshard";
  const std::string args = base_args(teacher) + "--method isl --limit 96 --batch-size 32 --epochs 3 ";
  AppRun full = run_kd(0, args + "--out " + base + "_full.safetensors --trace-batches " + base + "_full.trace",
                       "reshard_full");
  ASSERT_EQ(full.exit_code, 0) << full.out << full.err;
  const auto t_full = trace_of(base + "_full.trace");
  // 2 ranks -> 1 process.
  AppRun cut2 = run_kd(2, args + "--interrupt-after-steps 4 --out " + base + "_cut2.safetensors", "reshard_cut2");
  ASSERT_NE(cut2.exit_code, 0);
  ASSERT_NE(cut2.out.find("interrupted in epoch 2 after step 1"), std::string::npos) << cut2.out << cut2.err;
  AppRun one = run_kd(0, args + "--reshard --resume " + base + "_cut2.safetensors --out " + base +
                             "_one.safetensors --trace-batches " + base + "_one.trace", "reshard_one");
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  EXPECT_NE(one.out.find("re-sharding " + base + "_cut2.safetensors from 2 to 1 rank(s)"), std::string::npos)
      << one.out;
  const auto t_one = trace_of(base + "_one.trace");
  ASSERT_FALSE(t_one.empty());
  for (const auto& [key, batch] : t_one) {
    ASSERT_TRUE(t_full.count(key)) << "epoch " << key.first << " step " << key.second;
    EXPECT_EQ(batch, t_full.at(key)) << "epoch " << key.first << " step " << key.second;
  }
  EXPECT_EQ(t_one.begin()->first, std::next(t_full.begin(), 4)->first) << "the first resumed step follows the cut";
  EXPECT_EQ(t_one.rbegin()->first, t_full.rbegin()->first);
  // 1 process -> 2 ranks.
  AppRun cut1 = run_kd(0, args + "--interrupt-after-steps 4 --out " + base + "_cut1.safetensors", "reshard_cut1");
  ASSERT_NE(cut1.exit_code, 0);
  AppRun two = run_kd(2, args + "--reshard --rank-outputs --resume " + base + "_cut1.safetensors --out " + base +
                             "_two.safetensors --trace-batches " + base + "_two.trace", "reshard_two");
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto r0 = trace_of(base + "_two.trace"), r1 = trace_of(base + "_two.trace.rank1");
  ASSERT_FALSE(r0.empty());
  for (const auto& [key, batch] : r0) {
    std::vector<long> joined = batch;
    if (r1.count(key)) joined.insert(joined.end(), r1.at(key).begin(), r1.at(key).end());
    ASSERT_TRUE(t_full.count(key));
    EXPECT_EQ(joined, t_full.at(key)) << "epoch " << key.first << " step " << key.second;
  }
  expect_same_tensors(base + "_two.safetensors", base + "_two.safetensors.rank1");
}

// crd's memory banks are not synchronised across ranks yet: under mpirun the objective is refused with one line on
// every rank's stderr, before any step, instead of training on banks that silently diverge.
TEST(TrainKdMpi, CrdIsRefusedUnderDataParallel) {
  SKIP_WITHOUT_MPIRUN();
  AppRun r = run_kd(2, base_args(make_teacher()) + "--objective crd --objective-options '{\"nce_k\": 8}' --limit 64 "
                       "--batch-size 32 --epochs 1 --out " + dir() + "/islkd_mpi_crd.safetensors", "crd");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("objective 'crd' keeps per-instance state (memory banks)"), std::string::npos) << r.err;
}

// `train` (no teacher) under mpirun: the world and the global batch are printed and recorded, rank 0 alone writes
// the checkpoint and metrics; 130 = 4 x 32 + 2 gives an uneven last batch of one instance per rank.
TEST(TrainMpi, TrainRunsOnTwoRanksWithOneCheckpointAndTheWorldRecorded) {
  SKIP_WITHOUT_MPIRUN();
  const std::string out = dir() + "/islkd_mpi_train.safetensors", metrics = dir() + "/islkd_mpi_train.jsonl";
  std::filesystem::remove(metrics);
  AppRun r = run_app(kTrainExe, 2, "--model resnet8 --limit 130 --test-limit 32 --batch-size 32 --epochs 2 "
                                   "--threads 1 --device cpu --seed 3 --workers 1 --out " + out + " --metrics " + metrics,
                     "train");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("data-parallel over 2 ranks (mpi): global batch 32 = 2 x 16 per rank"), std::string::npos)
      << r.out;
  const std::string m = read_text(metrics);
  EXPECT_NE(m.find("\"world_size\":2"), std::string::npos) << m;
  EXPECT_NE(m.find("\"epoch\":2"), std::string::npos) << m;
  EXPECT_TRUE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".rank1"));
  EXPECT_EQ(r.out.find("train: done"), r.out.rfind("train: done")) << "rank 0 alone prints";
}

namespace {

// A 2-rank kd run that would take minutes, in which rank 1 sends itself `signal` 8 s after it starts ($$ is train_kd
// once the shell has exec'd it). How it ended, and how long it took.
struct SignalledRun {
  AppRun run;
  double seconds = 0;
};
SignalledRun run_with_rank1_signalled(const std::string& signal, const std::string& extra, const std::string& tag) {
  const std::string out = dir() + "/islkd_mpi_" + tag + ".safetensors";
  const std::string rank_cmd = "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then (sleep 8; kill -" + signal +
                               " $$) & fi; exec " + kExe + " " + base_args(make_teacher()) +
                               "--method kd --limit 2000 --batch-size 32 --epochs 50 " + extra + " --out " + out;
  const auto t0 = std::chrono::steady_clock::now();
  SignalledRun r;
  r.run = run_in_folder(mpirun_on_loopback(2, 300) + " sh -c '" + rank_cmd + "'", "mpi_" + tag);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace

// A rank killed mid-run (SIGKILL: no error line, no MPI_Abort of its own) ends the whole run: mpirun sees it die and
// ends the other rank, which would otherwise wait in its next all-reduce forever. The run asked for would take
// minutes; it must end, failed, well within 60 s of the kill.
TEST(TrainKdMpi, AKilledRankEndsTheRun) {
  SKIP_WITHOUT_MPIRUN();
  const SignalledRun r = run_with_rank1_signalled("9", "", "killed");
  EXPECT_NE(r.run.exit_code, 0) << r.run.err;
  EXPECT_NE(r.run.exit_code, 124) << "timed out: the surviving rank hung";
  EXPECT_LT(r.seconds, 8.0 + 60.0) << r.run.err;
  std::printf("a killed rank ended the run in %.1f s (exit %d)\n", r.seconds, r.run.exit_code);
}

// A rank that hangs (SIGSTOP: alive, silent, holding its connections, so mpirun sees nothing wrong) is noticed by the
// other rank's watchdog: its next collective waits --dist-timeout 5 s, then it prints one line naming the collective
// and aborts the run, and mpirun ends the stopped rank too. Without the watchdog the run waits forever (here, until
// `timeout 300`).
TEST(TrainKdMpi, AHungRankEndsTheRunAfterTheTimeout) {
  SKIP_WITHOUT_MPIRUN();
  const SignalledRun r = run_with_rank1_signalled("STOP", "--dist-timeout 5", "hung");
  const std::string& err = r.run.err;
  EXPECT_NE(r.run.exit_code, 0) << err;
  EXPECT_NE(r.run.exit_code, 124) << "timed out: the watchdog did not end the run";
  EXPECT_LT(r.seconds, 8.0 + 5.0 + 60.0) << err;
  EXPECT_NE(err.find("train_kd: error: rank 0 of 2 waited "), std::string::npos) << err;
  EXPECT_NE(err.find(" for the other ranks (--dist-timeout 5): one of them hung or died; ending the run"),
            std::string::npos)
      << err;
  std::printf("a hung rank ended the run in %.1f s (exit %d)\n", r.seconds, r.run.exit_code);
}

// --dist-timeout is checked like every flag: a negative wait is a one-line error before anything starts.
TEST(TrainKdMpi, ANegativeDistTimeoutIsRefused) {
  AppRun r = run_kd(0, base_args(make_teacher()) + "--method kd --limit 64 --dist-timeout -1", "timeout_neg");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--dist-timeout"), std::string::npos) << r.err;
}

// ISL by a student measure (loss, after a warm-up epoch): each rank scores its shard of the instances (101 over 2
// ranks: 50 and 51) and the scores are all-gathered, so both ranks sort the same scores into the same order and end
// with the same tensors, the curriculum's order included.
TEST(TrainKdMpi, StudentScoresAreShardedAndAllGathered) {
  SKIP_WITHOUT_MPIRUN();
  const std::string out = dir() + "/islkd_mpi_loss.safetensors";
  AppRun r = run_kd(2, base_args(make_teacher()) + "--method isl --measure loss --isl-warmup 1 --phase-epochs 1 "
                    "--epochs 3 --limit 101 --batch-size 32 --rank-outputs --out " + out, "loss");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("phase 0 from epoch 2: easiest 50%"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" by loss;"), std::string::npos) << r.out;
  expect_same_tensors(out, out + ".rank1");
}
