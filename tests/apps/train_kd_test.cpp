// The `train_kd` app end to end on tiny Fashion-MNIST subsets: an ISL run resumed at an epoch boundary and one
// interrupted mid-epoch (the Ctrl-C path) both end in the same checkpoint bytes as an uninterrupted run; the
// three-method comparison prints one `method accuracy` line each; TOML configs; one-line errors.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <regex>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/train/run_log.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

const std::string kExe = std::string(ISLKD_BINARY_DIR) + "/apps/train_kd";

std::string dir() { return ::testing::TempDir(); }

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Each run works in a folder of its own: outputs left at their default names (relative to the working directory)
// would otherwise meet another test's run under ctest -j, and the apps refuse a second writer of a file.
std::string own_cwd(const std::string& tag) {
  const std::string cwd = dir() + "/islkd_kd_" + tag + ".cwd";
  std::filesystem::create_directories(cwd);
  return cwd;
}

RunResult run_kd(const std::string& args, const std::string& tag) {
  const std::string out = dir() + "/islkd_kd_" + tag + ".out", err = dir() + "/islkd_kd_" + tag + ".err";
  int status = std::system(("cd " + own_cwd(tag) + " && " + kExe + " " + args + " > " + out + " 2> " + err).c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// A resnet8 teacher with seeded random weights for `classes` classes of 1-channel images: enough to exercise the
// mechanics (KD targets, scores, ordering) without training one.
std::string make_teacher(int64_t classes) {
  // Per process: ctest runs the cases in parallel, and two writers of one file are refused (the output lock).
  const std::string path = dir() + "/islkd_teacher_" + std::to_string(classes) + "_" + std::to_string(::getpid()) +
                           ".safetensors";
  models::ModelConfig c;
  c.num_classes = classes;
  c.in_channels = 1;
  c.seed = 99;
  auto m = models::create_model("resnet8", c);
  checkpoint::save(path, *m);
  return path;
}

// Tiny ISL run: epoch 0 plain KD, epochs 1-2 one curriculum phase on the easiest 60%, so epoch 2 uses the order
// held from the boundary at epoch 1.
std::string isl_args(const std::string& teacher) {
  return "--method isl --model resnet8 --teacher " + teacher +
         " --teacher-model resnet8 --limit 64 --test-limit 32 --batch-size 16 --threads 2 --device cpu --seed 5 "
         "--schedule multistep --milestones 2 --isl-warmup 1 --phases 1 --phase-epochs 2 --start-fraction 0.6 ";
}

}  // namespace

TEST(TrainKdApp, IslRunResumedAfterAnEpochOrAfterCtrlCMatchesAnUninterruptedRunByte4Byte) {
  const std::string teacher = make_teacher(10);
  const std::string full = dir() + "/islkd_kd_full.safetensors", part = dir() + "/islkd_kd_part.safetensors",
                    resumed = dir() + "/islkd_kd_resumed.safetensors", cut = dir() + "/islkd_kd_cut.safetensors";
  RunResult a = run_kd(isl_args(teacher) + "--epochs 3 --out " + full, "full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("phase 0 from epoch 2: easiest 60%"), std::string::npos) << a.out;

  // Stopped at the end of epoch 2 (4 steps per epoch). Not `--epochs 2`: a curriculum longer than --epochs is
  // refused (IslScheduleLongerThanEpochsIsAnError).
  RunResult b = run_kd(isl_args(teacher) + "--epochs 3 --interrupt-after-steps 8 --out " + part, "part");
  ASSERT_EQ(b.exit_code, 130) << b.out << b.err;
  EXPECT_NE(b.out.find("interrupted in epoch 2 after step 4"), std::string::npos) << b.out;
  RunResult c = run_kd(isl_args(teacher) + "--epochs 3 --resume " + part + " --out " + resumed, "resumed");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;

  // Ctrl-C path: 4 steps per epoch, stop after step 6 (inside the curriculum's first epoch), then resume.
  RunResult d = run_kd(isl_args(teacher) + "--epochs 3 --interrupt-after-steps 6 --out " + cut, "cut");
  ASSERT_EQ(d.exit_code, 130) << d.out << d.err;
  EXPECT_NE(d.out.find("interrupted in epoch 2 after step 2"), std::string::npos) << d.out;
  RunResult e = run_kd(isl_args(teacher) + "--epochs 3 --resume " + cut + " --out " + cut, "cut_resumed");
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;

  const std::string full_bytes = read_text(full);
  ASSERT_GT(full_bytes.size(), 1000u);
  EXPECT_NE(full_bytes, read_text(part));
  EXPECT_TRUE(full_bytes == read_text(resumed)) << "resumed after epoch 2 differs from the uninterrupted run";
  EXPECT_TRUE(full_bytes == read_text(cut)) << "resumed after Ctrl-C in epoch 2 differs from the uninterrupted run";
}

// With --augment the teacher runs on every augmented batch (no cached targets); that path resumes bit for bit too.
TEST(TrainKdApp, AugmentedKdRunResumedAfterCtrlCMatchesAnUninterruptedRunByte4Byte) {
  const std::string teacher = make_teacher(10);
  const std::string args = "--method kd --augment --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --limit 64 --test-limit 32 --batch-size 16 --threads 2 "
                           "--device cpu --seed 7 ";
  const std::string full = dir() + "/islkd_kdaug_full.safetensors", cut = dir() + "/islkd_kdaug_cut.safetensors";
  RunResult a = run_kd(args + "--epochs 2 --out " + full, "aug_full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("\"augment\":true"), std::string::npos) << a.out;
  EXPECT_EQ(a.out.find("teacher logits of"), std::string::npos) << "kd with augmentation must not cache\n" << a.out;
  RunResult d = run_kd(args + "--epochs 2 --interrupt-after-steps 5 --out " + cut, "aug_cut");
  ASSERT_EQ(d.exit_code, 130) << d.out << d.err;
  RunResult e = run_kd(args + "--epochs 2 --resume " + cut + " --out " + cut, "aug_cut_resumed");
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
  EXPECT_TRUE(read_text(full) == read_text(cut)) << "resumed after Ctrl-C differs from the uninterrupted run";

  // The checkpoint records augmentation; resuming it without augmentation is refused, naming the setting.
  RunResult f = run_kd(args + "--no-augment --epochs 3 --resume " + full + " --out " + dir() + "/islkd_x.safetensors",
                       "aug_mismatch");
  EXPECT_EQ(f.exit_code, 1) << f.out << f.err;
  EXPECT_NE(f.err.find("augment"), std::string::npos) << f.err;
}

// Without augmentation (the default) kd and isl take the teacher's logits from the cache made once; --eval-every
// adds mid-epoch test accuracies to the metrics; the ISL boundary reports its cost against a training epoch.
TEST(TrainKdApp, CachedTeacherTargetsMidEpochEvaluationsAndBoundaryShare) {
  const std::string teacher = make_teacher(10);
  const std::string metrics = dir() + "/islkd_kd_eval.jsonl";
  std::remove((dir() + "/islkd_kd_eval_isl.jsonl").c_str());
  RunResult r = run_kd("--method kd,isl --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --limit 96 --test-limit 32 --batch-size 16 --epochs 2 "
                           "--isl-warmup 1 --phases 1 --eval-every 4 --threads 2 --device cpu --metrics " + metrics +
                           " --out " + dir() + "/islkd_eval.safetensors",
                       "eval_every");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"augment\":false"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("teacher logits of 96 un-augmented training instances cached"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("the boundary costs [0-9.]+% of a training epoch"))) << r.out;
  EXPECT_NE(r.out.find("batch norms folded"), std::string::npos) << r.out;
  // 6 steps an epoch, an evaluation every 4 steps: mid-epoch at global steps 4 and 8, plus the two epoch ends, plus
  // the final line (test accuracy per class).
  const std::string m = read_text(dir() + "/islkd_kd_eval_isl.jsonl");
  EXPECT_EQ(count_lines(m), 6) << m;
  EXPECT_NE(m.find("\"test_per_class\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"subset_class_counts\""), std::string::npos) << m;
  EXPECT_TRUE(std::regex_search(m, std::regex("\"epoch_step\":4,\"lr\":[0-9.e+-]+,\"step\":4"))) << m;
  EXPECT_TRUE(std::regex_search(m, std::regex("\"epoch_step\":2,\"lr\":[0-9.e+-]+,\"step\":8"))) << m;
  EXPECT_NE(m.find("\"boundary_share_of_epoch\""), std::string::npos) << m;
}

TEST(TrainKdApp, ComparisonPrintsOneAccuracyLinePerMethod) {
  const std::string teacher = make_teacher(10);
  RunResult r = run_kd("--method ce,kd,isl --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --limit 64 --test-limit 64 --batch-size 32 --epochs 2 "
                           "--isl-warmup 1 --phases 1 --threads 2 --device cpu --out " + dir() + "/islkd_cmp.safetensors",
                       "compare");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* m : {"ce", "kd", "isl"})
    EXPECT_TRUE(std::regex_search(r.out, std::regex(std::string("(^|\n)") + m + " [0-9]+\\.[0-9]{2}\n"))) << r.out;
  EXPECT_EQ(read_text(dir() + "/islkd_cmp_ce.safetensors").empty(), false);
  EXPECT_EQ(read_text(dir() + "/islkd_cmp_isl.safetensors").empty(), false);
}

TEST(TrainKdApp, TomlConfigSetsOptionsAndFlagsOverrideIt) {
  const std::string toml = dir() + "/islkd_kd.toml";
  {
    std::ofstream f(toml);
    f << "method = \"ce\"\nmodel = \"resnet8\"\nepochs = 1\nlimit = 32\ntest_limit = 32\nbatch_size = 32\n"
         "lr = 0.02\nthreads = 2\ndevice = \"cpu\"\n[schedule_section]\nschedule = \"multistep\"\n"
         "milestones = [0.5]\n";
  }
  RunResult r = run_kd("--config " + toml + " --seed 3 --lr 0.03 --out " + dir() + "/islkd_toml.safetensors", "toml");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"lr\":0.03"), std::string::npos) << r.out;  // the flag wins over the file's 0.02
  EXPECT_NE(r.out.find("\"milestones\":[0.5]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"seed\":3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"train_instances\":32"), std::string::npos) << r.out;

  {
    std::ofstream f(toml);
    f << "epochz = 3\n";
  }
  RunResult bad = run_kd("--config " + toml, "toml_bad");
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("epochz"), std::string::npos) << bad.err;
  EXPECT_EQ(count_lines(bad.err), 1) << bad.err;
}

TEST(TrainKdApp, BadTeacherOrArgumentsGiveOneErrorLineAndExitCode1) {
  const std::string teacher100 = make_teacher(100);
  struct Bad {
    std::string args, expect;
  };
  const std::vector<Bad> cases = {
      {"--method kd --teacher " + teacher100 + " --teacher-model resnet8 --limit 32 --epochs 1", "10 classes"},
      {"--method kd --teacher " + dir() + "/no_such_teacher.safetensors --limit 32 --epochs 1", "no_such_teacher"},
      {"--method distill --limit 32 --epochs 1", "distill"},
      {"--method ce --limit 32 --epochs 1 --data-path " + dir() + "/no_such_data", "no_such_data"},
      {"--method isl --teacher " + make_teacher(10) + " --teacher-model resnet8 --limit 32 --epochs 1 --pacing zigzag",
       "zigzag"},
      {"--method ce --limit 32 --epochs 1 --bogus-flag 3", "bogus-flag"},
  };
  int k = 0;
  for (const Bad& c : cases) {
    RunResult r = run_kd(c.args + " --device cpu --threads 2 --test-limit 32", "bad" + std::to_string(k++));
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
  }
}

// Every method's outputs are checked before the first method trains: the second method's checkpoint path being a
// directory stops the comparison at start, naming that path, and leaves the directory alone.
TEST(TrainKdApp, OutputOfALaterMethodOntoADirectoryIsRefusedBeforeAnyTraining) {
  const std::string base = dir() + "/islkd_kd_claim.safetensors", kd_out = dir() + "/islkd_kd_claim_kd.safetensors";
  std::filesystem::create_directories(kd_out);
  RunResult r = run_kd("--method ce,kd --teacher " + dir() + "/no_such_teacher.safetensors --limit 32 --epochs 1 "
                       "--device cpu --threads 2 --test-limit 32 --out " + base, "claim");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(kd_out), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("directory"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("epoch"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::is_directory(kd_out));
  std::filesystem::remove(kd_out);
}

// A forced activation block the CPU backend has no kernels for stops the app before any work, with one line that
// names the layout (never a wrong result, never oneDNN's reference kernels).
TEST(TrainKdApp, UnsupportedForcedChannelBlockIsOneErrorLineNamingTheLayout) {
  const std::string out = dir() + "/islkd_kd_block.out", err = dir() + "/islkd_kd_block.err";
  const int status = std::system(("cd " + own_cwd("block") + " && ISLKD_CPU_CHANNEL_BLOCK=32 " + kExe +
                                  " --method ce --limit 32 --test-limit 32 --epochs 1 --device cpu --threads 2 > " +
                                  out + " 2> " + err)
                                     .c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string e = read_text(err);
  EXPECT_EQ(count_lines(e), 1) << e;
  EXPECT_NE(e.find("nChw32c"), std::string::npos) << e;
}

// ---- issue 13: a fair ISL-KD comparison; the variants resume exactly ----

namespace {

// Every tensor of a train_kd checkpoint (parameters, buffers, momentum) by name; the metadata is left out.
std::map<std::string, safetensors::Entry> tensors_of(const std::string& path) {
  std::map<std::string, safetensors::Entry> m;
  for (auto& e : safetensors::load(path).entries) m[e.name] = e;
  return m;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string fair_args(const std::string& teacher) {
  return "--model resnet8 --teacher " + teacher +
         " --teacher-model resnet8 --limit 96 --test-limit 32 --batch-size 16 --threads 2 --device cpu --seed 11 "
         "--epochs 3 --isl-warmup 1 --phases 1 --phase-epochs 1 ";
}

}  // namespace

// With phases that keep 100% of the data, shuffled, ISL is KD: the same batches at every step, hence the same
// parameters, batch-norm statistics and momentum buffers, bit for bit (the scoring pass changes nothing).
TEST(TrainKdApp, IslWhosePhasesKeepAllDataEndsWithKdsTensorsBitForBit) {
  const std::string teacher = make_teacher(10);
  const std::string kd = dir() + "/islkd_fair_kd.safetensors", isl = dir() + "/islkd_fair_isl.safetensors";
  RunResult a = run_kd(fair_args(teacher) + "--method kd --out " + kd, "fair_kd");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  RunResult b = run_kd(fair_args(teacher) + "--method isl --start-fraction 1 --out " + isl, "fair_isl");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  ASSERT_NE(b.out.find("phase 0 from epoch 2: easiest 100%"), std::string::npos) << b.out;
  auto tk = tensors_of(kd), ti = tensors_of(isl);
  int momentum = 0;
  for (const auto& [name, e] : tk) {
    ASSERT_TRUE(ti.count(name)) << name;
    const safetensors::Entry& f = ti.at(name);
    EXPECT_EQ(f.shape, e.shape) << name;
    EXPECT_EQ(f.i64, e.i64) << name;
    ASSERT_EQ(f.f32.size(), e.f32.size()) << name;
    if (!e.f32.empty())  // (memcmp of two empty vectors' null data() is undefined behaviour)
      EXPECT_EQ(std::memcmp(f.f32.data(), e.f32.data(), e.f32.size() * sizeof(float)), 0) << name << " differs";
    momentum += name.find("momentum") != std::string::npos;
  }
  EXPECT_GT(momentum, 10) << "the momentum buffers are compared too";
  for (const auto& [name, e] : ti) EXPECT_TRUE(tk.count(name) || name == "curriculum.order") << name;
}

// With a 50% phase, the warm-up and the final epoch draw KD's instances step by step; the phase draws from the
// easiest half only.
TEST(TrainKdApp, IslWarmupAndFinalEpochsDrawKdsInstancesStepByStep) {
  const std::string teacher = make_teacher(10);
  const std::string tk = dir() + "/islkd_trace.txt";
  RunResult r = run_kd(fair_args(teacher) + "--method kd,isl --start-fraction 0.5 --trace-batches " + tk +
                           " --out " + dir() + "/islkd_trace.safetensors",
                       "trace");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<std::string> kd = lines_of(read_text(dir() + "/islkd_trace_kd.txt")),
                                 isl = lines_of(read_text(dir() + "/islkd_trace_isl.txt"));
  ASSERT_EQ(kd.size(), 18u);  // 3 epochs x 6 steps
  ASSERT_EQ(isl.size(), 18u);
  std::set<std::string> phase_instances;
  for (size_t i = 0; i < 18; ++i) {
    if (i < 6 || i >= 12) {
      EXPECT_EQ(isl[i], kd[i]) << "step " << i;
    } else {
      std::istringstream in(isl[i]);
      std::string epoch, step, idx;
      in >> epoch >> step;
      EXPECT_EQ(epoch, "1");
      while (in >> idx) phase_instances.insert(idx);
    }
  }
  EXPECT_EQ(phase_instances.size(), 48u) << "the phase cycles the easiest half of 96 instances";
}

namespace {

// A variant or control trains, and a run cut by Ctrl-C after step 6 (inside epoch 2) resumes to the same bytes.
void check_variant_resumes_byte4byte(const std::string& v, const std::string& tag) {
  const std::string teacher = make_teacher(10);
  const std::string full = dir() + "/islkd_" + tag + "_full.safetensors", cut = dir() + "/islkd_" + tag + "_cut.safetensors";
  const std::string args = "--method isl --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --limit 64 --test-limit 32 --batch-size 16 --threads 2 "
                           "--device cpu --seed 5 --epochs 3 " + v + " ";
  RunResult a = run_kd(args + "--out " + full, tag + "_full");
  ASSERT_EQ(a.exit_code, 0) << v << "\n" << a.out << a.err;
  EXPECT_NE(a.out.find("phase 0 from epoch"), std::string::npos) << v << "\n" << a.out;
  RunResult d = run_kd(args + "--interrupt-after-steps 6 --out " + cut, tag + "_cut");
  ASSERT_EQ(d.exit_code, 130) << v << "\n" << d.out << d.err;
  RunResult e = run_kd(args + "--resume " + cut + " --out " + cut, tag + "_resumed");
  ASSERT_EQ(e.exit_code, 0) << v << "\n" << e.out << e.err;
  EXPECT_TRUE(read_text(full) == read_text(cut)) << v << ": resumed after Ctrl-C differs from the uninterrupted run";
}

}  // namespace

TEST(TrainKdApp, IslRandomHardFirstControlResumesByte4Byte) {
  check_variant_resumes_byte4byte("--measure random --direction hard-first", "v_random");
}

// Teacher difficulty from step 0 (no warm-up), two phases: epoch 2 is inside the second phase.
TEST(TrainKdApp, IslTeacherStratifiedHardShareLrRestartResumesByte4Byte) {
  check_variant_resumes_byte4byte(
      "--measure teacher-ce --stratified --hard-share 0.25 --lr-restart --isl-warmup 0 --phases 2", "v_teacher");
}

TEST(TrainKdApp, IslWeightedRescoredDisagreementResumesByte4Byte) {
  check_variant_resumes_byte4byte(
      "--measure disagreement --curriculum-mode weighted --weight-tau 0.3 --rescore-every-epoch --phase-epochs 2",
      "v_weighted");
}

// --pace-to-lr-drop: the KD schedule scaled to 3 epochs drops at 1.875, so the phase is epoch 1 (warm-up 0).
TEST(TrainKdApp, IslPaceToLrDropResumesByte4Byte) {
  check_variant_resumes_byte4byte("--measure teacher-confidence --isl-warmup 0 --pace-to-lr-drop --schedule kd",
                                  "v_pace");
}

// --method isl's defaults are the ISL study's choice (bench/isl_study/report.md): the teacher's CE as difficulty, no
// warm-up, the phase paced to end before the LR first drops (epoch 1 of 3 with the KD schedule at 8 steps an epoch: the
// drop at 1.875 epochs is step 15, in epoch 2; 1 of 1 when the run
// is too short for a whole epoch before the drop); an explicit --phase-epochs turns the pacing off, and asking for
// both is refused.
TEST(TrainKdApp, IslDefaultsAreTheIslStudysChoice) {
  const std::string teacher = make_teacher(10);
  const std::string base = "--method isl --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --limit 64 --test-limit 16 --batch-size 8 --threads 2 "
                           "--device cpu --seed 2 --out " + dir() + "/islkd_defaults.safetensors ";
  RunResult three = run_kd(base + "--epochs 3", "defaults3");
  ASSERT_EQ(three.exit_code, 0) << three.out << three.err;
  for (const char* want : {"\"measure\":\"teacher-ce\"", "\"warmup_epochs\":0", "\"phase_epochs\":1",
                           "\"num_phases\":1", "\"start_fraction\":0.5", "\"direction\":\"easy-first\"",
                           "phase 0 from epoch 1: easiest 50%"})
    EXPECT_NE(three.out.find(want), std::string::npos) << want << "\n" << three.out;
  RunResult six = run_kd(base + "--epochs 6", "defaults6");  // the drop at 3.75 epochs: a 3-epoch phase
  ASSERT_EQ(six.exit_code, 0) << six.out << six.err;
  EXPECT_NE(six.out.find("\"phase_epochs\":3"), std::string::npos) << six.out;
  RunResult one = run_kd(base + "--epochs 1", "defaults1");
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  EXPECT_NE(one.out.find("\"phase_epochs\":1"), std::string::npos) << one.out;
  RunResult fixed = run_kd(base + "--epochs 6 --phase-epochs 2", "defaults_fixed");
  ASSERT_EQ(fixed.exit_code, 0) << fixed.out << fixed.err;
  EXPECT_NE(fixed.out.find("\"phase_epochs\":2"), std::string::npos) << fixed.out;
  RunResult both = run_kd(base + "--epochs 3 --phase-epochs 1 --pace-to-lr-drop", "defaults_both");
  EXPECT_EQ(both.exit_code, 1) << both.out << both.err;
  EXPECT_NE(both.err.find("either --phase-epochs or --pace-to-lr-drop"), std::string::npos) << both.err;
}

// --val-split holds instances out of the student's training set and evaluates on them during the run, the test
// split once at the end; --label-noise is recorded, changes the run, and resuming with another value is refused.
TEST(TrainKdApp, ValidationSplitAndLabelNoise) {
  const std::string teacher = make_teacher(10);
  const std::string metrics = dir() + "/islkd_val.jsonl", out = dir() + "/islkd_val.safetensors";
  const std::string args = "--method isl --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --limit 96 --test-limit 32 --batch-size 16 --threads 2 "
                           "--device cpu --seed 3 --phase-epochs 1 ";  // the layout of --epochs 2 and 3 alike
  std::remove(metrics.c_str());
  RunResult r = run_kd(args + "--epochs 2 --val-split 32 --label-noise 0.4 --metrics " + metrics + " --out " + out, "val");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"train_instances\":64"), std::string::npos) << r.out;  // 96 - 32 held out
  EXPECT_NE(r.out.find("\"label_noise\":0.4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("val acc"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("  test acc "), std::string::npos) << "an epoch evaluated on the test split\n" << r.out;
  EXPECT_NE(r.out.find("isl: test acc"), std::string::npos) << r.out;
  const std::vector<std::string> m = lines_of(read_text(metrics));
  ASSERT_EQ(m.size(), 4u);  // config, 2 epochs, final
  EXPECT_NE(m[1].find("\"val_accuracy\""), std::string::npos) << m[1];
  EXPECT_EQ(m[1].find("\"test_accuracy\""), std::string::npos) << m[1];
  EXPECT_NE(m[3].find("\"final\":true"), std::string::npos) << m[3];
  EXPECT_NE(m[3].find("\"test_accuracy\""), std::string::npos) << m[3];

  RunResult clean = run_kd(args + "--epochs 2 --val-split 32 --out " + dir() + "/islkd_val_clean.safetensors", "val_clean");
  ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;
  EXPECT_NE(read_text(out), read_text(dir() + "/islkd_val_clean.safetensors")) << "the noise changed nothing";

  RunResult bad = run_kd(args + "--epochs 3 --val-split 32 --label-noise 0.2 --resume " + out + " --out " + dir() +
                             "/islkd_val_bad.safetensors",
                         "val_bad");
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("label_noise"), std::string::npos) << bad.err;
  RunResult toolarge = run_kd(args + "--epochs 2 --val-split 96 --out " + dir() + "/islkd_val_big.safetensors", "val_big");
  EXPECT_EQ(toolarge.exit_code, 1) << toolarge.out << toolarge.err;
}

// --lr-restart: the KD schedule scaled to each segment (warm-up, phase, final epoch) restarts at its first step, so
// the final epoch starts at the base rate again; without it the final epoch of 3 starts after the drop at 1.875.
TEST(TrainKdApp, IslLrRestartStartsEverySegmentAtTheBaseRate) {
  const std::string teacher = make_teacher(10);
  const std::string args = "--method isl --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --limit 32 --test-limit 16 --batch-size 16 --threads 2 "
                           "--device cpu --seed 1 --epochs 3 --eval-every 1 --schedule kd --lr 0.05 ";
  std::map<std::string, std::string> first_lr_of_epoch3;
  for (const std::string& v : {std::string("--lr-restart"), std::string()}) {
    const std::string metrics = dir() + "/islkd_restart" + (v.empty() ? "_off" : "_on") + ".jsonl";
    std::remove(metrics.c_str());
    RunResult r = run_kd(args + v + " --metrics " + metrics + " --out " + dir() + "/islkd_restart.safetensors",
                         "restart" + std::string(v.empty() ? "_off" : "_on"));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::smatch m;
    const std::string text = read_text(metrics);
    ASSERT_TRUE(std::regex_search(text, m, std::regex("\"epoch\":3,\"epoch_step\":1,\"lr\":([0-9.e+-]+)"))) << text;
    first_lr_of_epoch3[v] = m[1];
  }
  EXPECT_EQ(first_lr_of_epoch3["--lr-restart"], "0.05");
  EXPECT_EQ(std::stod(first_lr_of_epoch3[""]), 0.05 * 0.1);
}

// The objective and the curriculum are two flags; --method is their shorthand (isl = --objective kd --curriculum
// isl): the long form runs the same training, tensor for tensor, and records the same config.
TEST(TrainKdApp, ObjectiveAndCurriculumFlagsTrainWhatTheMethodShorthandTrains) {
  const std::string teacher = make_teacher(10);
  for (const auto& [method, long_form] : std::vector<std::pair<std::string, std::string>>{
           {"isl", "--objective kd --curriculum isl"}, {"ce", "--objective ce"}, {"kd", "--curriculum none"}}) {
    const std::string a_out = dir() + "/islkd_obj_" + method + "_a.safetensors",
                      b_out = dir() + "/islkd_obj_" + method + "_b.safetensors";
    std::string base = isl_args(teacher) + "--epochs 3 ";
    base.replace(base.find("--method isl"), 12, "");
    RunResult a = run_kd(base + "--method " + method + " --out " + a_out, "obj_a_" + method);
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
    RunResult b = run_kd(base + long_form + " --out " + b_out, "obj_b_" + method);
    ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
    auto ta = tensors_of(a_out), tb = tensors_of(b_out);
    ASSERT_EQ(ta.size(), tb.size()) << method;
    for (const auto& [name, e] : ta) {
      ASSERT_TRUE(tb.count(name)) << name;
      EXPECT_EQ(tb.at(name).f32, e.f32) << method << ": " << name;
      EXPECT_EQ(tb.at(name).i64, e.i64) << method << ": " << name;
    }
    EXPECT_EQ(read_text(a_out), read_text(b_out)) << method << ": the same run writes the same file";
  }
  RunResult both = run_kd("--method kd --objective ce --limit 32 --epochs 1", "obj_both");
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_NE(both.err.find("either --method or --objective"), std::string::npos) << both.err;
  RunResult unknown = run_kd("--objective fitnes --limit 32 --epochs 1", "obj_unknown");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("unknown objective 'fitnes'"), std::string::npos) << unknown.err;
  EXPECT_EQ(count_lines(unknown.err), 1) << unknown.err;
}

// ---- issue 14 part C: the feature objectives train from the command line; fitnet's regressor resumes ----

std::string feature_args(const std::string& teacher, const std::string& objective) {
  return "--objective " + objective + " --model resnet8 --teacher " + teacher +
         " --teacher-model resnet8 --limit 32 --test-limit 16 --batch-size 8 --threads 2 --device cpu --seed 5 ";
}

// FitNet's regressor is the objective's own parameters: checkpointed as objective.fitnet.*, and a run resumed after
// epoch 1 (or cut by Ctrl-C inside epoch 2) ends in the same bytes as an uninterrupted one.
TEST(TrainKdApp, FitnetRunResumedAfterAnEpochOrCtrlCMatchesAnUninterruptedRunByte4Byte) {
  // Fixed milestones: the 1-epoch run records the same schedule as the 2-epoch one (the default scales with --epochs).
  const std::string teacher = make_teacher(10),
                    args = feature_args(teacher, "fitnet") + "--schedule multistep --milestones 1 ";
  const std::string full = dir() + "/islkd_fitnet_full.safetensors", part = dir() + "/islkd_fitnet_part.safetensors",
                    cut = dir() + "/islkd_fitnet_cut.safetensors";
  RunResult a = run_kd(args + "--epochs 2 --out " + full, "fitnet_full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("no logit cache"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("MiB per batch of 8"), std::string::npos) << a.out;
  RunResult b = run_kd(args + "--epochs 1 --out " + part, "fitnet_part");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  RunResult c = run_kd(args + "--epochs 2 --resume " + part + " --out " + part, "fitnet_resumed");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  RunResult d = run_kd(args + "--epochs 2 --interrupt-after-steps 6 --out " + cut, "fitnet_cut");
  ASSERT_EQ(d.exit_code, 130) << d.out << d.err;  // interrupted, as by Ctrl-C
  RunResult e = run_kd(args + "--epochs 2 --resume " + cut + " --out " + cut, "fitnet_cut_resumed");
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
  auto t = tensors_of(full);
  int regressor = 0;
  for (const auto& [name, entry] : t) regressor += name.rfind("objective.fitnet.", 0) == 0;
  EXPECT_EQ(regressor, 4) << "conv.weight, conv.bias, bn.weight, bn.bias";
  const std::string full_bytes = read_text(full);
  EXPECT_TRUE(full_bytes == read_text(part)) << "resumed after epoch 1 differs from the uninterrupted run";
  EXPECT_TRUE(full_bytes == read_text(cut)) << "resumed after Ctrl-C in epoch 2 differs from the uninterrupted run";
}

TEST(TrainKdApp, VidRunResumedAfterAnEpochOrCtrlCMatchesAnUninterruptedRunByte4Byte) {
  // VID's regressors and log-variances are trainable state: they must be optimized, checkpointed and resumed.
  const std::string teacher = make_teacher(10),
                    args = feature_args(teacher, "vid") + "--schedule multistep --milestones 1 ";
  const std::string full = dir() + "/islkd_vid_full.safetensors", part = dir() + "/islkd_vid_part.safetensors",
                    cut = dir() + "/islkd_vid_cut.safetensors";
  RunResult a = run_kd(args + "--epochs 2 --out " + full, "vid_full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  RunResult b = run_kd(args + "--epochs 1 --out " + part, "vid_part");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  RunResult c = run_kd(args + "--epochs 2 --resume " + part + " --out " + part, "vid_resumed");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  RunResult d = run_kd(args + "--epochs 2 --interrupt-after-steps 6 --out " + cut, "vid_cut");
  ASSERT_EQ(d.exit_code, 130) << d.out << d.err;  // interrupted, as by Ctrl-C
  RunResult e = run_kd(args + "--epochs 2 --resume " + cut + " --out " + cut, "vid_cut_resumed");
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
  auto t = tensors_of(full);
  int params = 0;
  for (const auto& [name, entry] : t) params += name.rfind("objective.vid.", 0) == 0;
  EXPECT_GE(params, 8) << "per stage pair: regressor.{0,2,4}.weight and log_scale";
  EXPECT_EQ(params % 4, 0);
  EXPECT_TRUE(t.count("objective.vid.0.log_scale")) << "log_scale is checkpointed";
  const std::string full_bytes = read_text(full);
  EXPECT_TRUE(full_bytes == read_text(part)) << "resumed after epoch 1 differs from the uninterrupted run";
  EXPECT_TRUE(full_bytes == read_text(cut)) << "resumed after Ctrl-C in epoch 2 differs from the uninterrupted run";
}

// CRD's memory banks and Z are buffers (changed by every step, never optimized) and its negatives are drawn per
// (seed, epoch, step, row): checkpointed as objective.crd.contrast.*, a resumed run ends in the same bytes.
TEST(TrainKdApp, CrdRunResumedAfterAnEpochOrCtrlCMatchesAnUninterruptedRunByte4ByteMemoriesIncluded) {
  const std::string teacher = make_teacher(10),
                    args = feature_args(teacher, "crd") + "--objective-options '{\"nce_k\": 16}' " +
                           "--schedule multistep --milestones 1 ";
  const std::string full = dir() + "/islkd_crd_full.safetensors", part = dir() + "/islkd_crd_part.safetensors",
                    cut = dir() + "/islkd_crd_cut.safetensors";
  RunResult a = run_kd(args + "--epochs 2 --out " + full, "crd_full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  RunResult b = run_kd(args + "--epochs 1 --out " + part, "crd_part");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  RunResult c = run_kd(args + "--epochs 2 --resume " + part + " --out " + part, "crd_resumed");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  RunResult d = run_kd(args + "--epochs 2 --interrupt-after-steps 6 --out " + cut, "crd_cut");
  ASSERT_EQ(d.exit_code, 130) << d.out << d.err;  // interrupted, as by Ctrl-C
  RunResult e = run_kd(args + "--epochs 2 --resume " + cut + " --out " + cut, "crd_cut_resumed");
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
  auto t = tensors_of(full);
  for (const char* n : {"objective.crd.embed_s.linear.weight", "objective.crd.embed_s.linear.bias",
                        "objective.crd.embed_t.linear.weight", "objective.crd.embed_t.linear.bias",
                        "objective.crd.contrast.memory_v1", "objective.crd.contrast.memory_v2",
                        "objective.crd.contrast.z_v1", "objective.crd.contrast.z_v2"})
    EXPECT_TRUE(t.count(n)) << n << " is checkpointed";
  // The optimizer's momentum covers the embeds only: the buffers are not optimized.
  int momentum_of_buffers = 0;
  for (const auto& [name, entry] : t) momentum_of_buffers += name.find("contrast") != std::string::npos &&
                                                             name.rfind("objective.", 0) != 0;
  EXPECT_EQ(momentum_of_buffers, 0);
  const std::string full_bytes = read_text(full);
  EXPECT_TRUE(full_bytes == read_text(part)) << "resumed after epoch 1 differs from the uninterrupted run";
  EXPECT_TRUE(full_bytes == read_text(cut)) << "resumed after Ctrl-C in epoch 2 differs from the uninterrupted run";
  // The default nce_k needs a training set larger than 32 instances: one line that says what to pass.
  RunResult f = run_kd(feature_args(teacher, "crd") + "--epochs 1 --out " + dir() + "/islkd_crd_k.safetensors",
                       "crd_default_k");
  EXPECT_NE(f.exit_code, 0);
  EXPECT_NE(f.err.find("pass a smaller nce_k"), std::string::npos) << f.err;
  EXPECT_EQ(count_lines(f.err), 1) << f.err;
}

TEST(TrainKdApp, FeatureAndDkdObjectivesTrainWithAndWithoutTheCurriculum) {
  const std::string teacher = make_teacher(10);
  for (const std::string objective : {"dkd", "at", "fitnet", "sp", "pkt", "rkd", "vid", "crd"}) {
    for (const std::string curriculum : {"none", "isl"}) {
      const std::string tag = "obj_" + objective + "_" + curriculum;
      std::string args = feature_args(teacher, objective) + "--curriculum " + curriculum + " --epochs 2 --out " +
                         dir() + "/islkd_" + tag + ".safetensors ";
      if (curriculum == "isl") args += "--isl-warmup 1 --phases 1 --phase-epochs 1 --start-fraction 0.5 ";
      if (objective == "crd") args += "--objective-options '{\"nce_k\": 16}' ";  // 32 training instances
      RunResult r = run_kd(args, tag);
      ASSERT_EQ(r.exit_code, 0) << tag << "\n" << r.out << r.err;
      EXPECT_NE(r.out.find("epoch 2/2"), std::string::npos) << tag << "\n" << r.out;
      EXPECT_NE(r.out.find("\"objective\":\"" + objective + "\""), std::string::npos) << tag << "\n" << r.out;
      EXPECT_EQ(r.out.find("nan"), std::string::npos) << tag << "\n" << r.out;
    }
  }
}

namespace {

// The mixed-size ImageFolder fixture (tests/data/make_fixtures.py mixed_imagefolder: 2 classes, RGB) made afresh in
// `data`; false (with the command printed) when the script failed.
bool make_mixed_imagefolder(const std::string& data) {
  std::filesystem::remove_all(data);
  const std::string make = std::string("/usr/bin/python3 ") + ISLKD_SOURCE_DIR + "/tests/data/make_fixtures.py '" +
                           data + "' mixed_imagefolder";
  const bool ok = std::system(make.c_str()) == 0;
  if (!ok) ADD_FAILURE() << make;
  return ok;
}

// A resnet8 teacher with seeded random weights for 2 classes of RGB images, saved as <data>/teacher.safetensors.
std::string save_rgb2_teacher(const std::string& data, uint64_t seed) {
  const std::string teacher = data + "/teacher.safetensors";
  models::ModelConfig c;
  c.num_classes = 2;
  c.in_channels = 3;
  c.seed = seed;
  checkpoint::save(teacher, *models::create_model("resnet8", c));
  return teacher;
}

}  // namespace

// issue 17: KD on an ImageFolder of mixed sizes (tests/data/make_fixtures.py) at --image-size 24: with --augment the
// student and the live teacher see the same RandomResizedCrop + flip, and a run cut by Ctrl-C resumes byte for byte;
// without it the teacher's logits are cached once from the centre crops.
TEST(TrainKdApp, MixedSizeImageFolderKdAtAnImageSizeResumesByte4Byte) {
  const std::string data = dir() + "/islkd_kd_mixed_" + std::to_string(::getpid());
  ASSERT_TRUE(make_mixed_imagefolder(data));
  const std::string teacher = save_rgb2_teacher(data, 99);
  const std::string args = "--method kd --model resnet8 --teacher " + teacher + " --teacher-model resnet8 "
                           "--dataset imagefolder --data-path " + data + " --image-size 24 --batch-size 2 "
                           "--threads 2 --workers 2 --device cpu --seed 7 ";
  const std::string full = data + "/full.safetensors", cut = data + "/cut.safetensors";
  RunResult a = run_kd(args + "--augment --epochs 2 --out " + full, "mixed_full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("\"image_size\":24"), std::string::npos) << a.out;
  RunResult d = run_kd(args + "--augment --epochs 2 --interrupt-after-steps 4 --out " + cut, "mixed_cut");
  ASSERT_EQ(d.exit_code, 130) << d.out << d.err;
  RunResult e = run_kd(args + "--augment --epochs 2 --resume " + cut + " --out " + cut, "mixed_cut_resumed");
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
  EXPECT_TRUE(read_text(full) == read_text(cut)) << "resumed after Ctrl-C differs from the uninterrupted run";
  RunResult f = run_kd(args + "--epochs 1 --out " + data + "/cached.safetensors", "mixed_cached");
  ASSERT_EQ(f.exit_code, 0) << f.out << f.err;
  EXPECT_NE(f.out.find("teacher logits of"), std::string::npos) << f.out;
}

namespace {

// The ISL order (easiest first) that teacher-ce gives `teacher` on the un-augmented train split read with
// normalisation `norm`, computed here without train_kd: the train split through the evaluation loader, the teacher's
// cross-entropy per instance, sorted ascending (ties keep index order, as the curriculum's radix sort does).
std::vector<int64_t> teacher_ce_order(const std::string& teacher, const std::string& data, const std::string& norm) {
  data::DatasetOptions o;
  o.image_size = 24;
  o.normalization = norm;
  auto ds = data::open_dataset("imagefolder", data, "train", o);
  models::ModelConfig c;
  c.num_classes = ds->num_classes();
  c.in_channels = ds->channels();
  auto m = models::create_model("resnet8", c);
  checkpoint::load(teacher, *m);
  m->eval();
  data::LoaderOptions lo;
  lo.batch_size = 2;
  data::Loader loader = train::sequential_loader(ds, ds->size(), lo);
  NoGradGuard no_grad;
  std::vector<double> ce;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    const std::vector<float> y = (*m)(b.images).to_vector();
    const std::vector<int32_t> labels = b.labels.to_labels();
    const int64_t k = c.num_classes;
    for (size_t r = 0; r < labels.size(); ++r) {
      const float* row = y.data() + r * static_cast<size_t>(k);
      double mx = row[0], sum = 0;
      for (int64_t j = 1; j < k; ++j) mx = std::max<double>(mx, row[j]);
      for (int64_t j = 0; j < k; ++j) sum += std::exp(row[j] - mx);
      ce.push_back(mx + std::log(sum) - row[labels[r]]);
    }
  }
  std::vector<int64_t> order(ce.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ce[a] < ce[b]; });
  return order;
}

}  // namespace

// --normalization imagenet in train_kd (teachers converted from torchvision's ImageNet ResNets): recorded in the
// metrics' config line and the checkpoint, a --resume with another normalisation is one error line naming it, and
// the teacher sees the run's normalisation, the student's: the teacher-ce ISL order of the phase (written by
// --trace-batches) is the one computed here from the imagenet-normalised split, not the half-normalised one (the
// teacher's own checkpoint records no normalisation and none is read from it).
TEST(TrainKdApp, ImagenetNormalizationIsRecordedCheckedOnResumeAndFedToTheTeacher) {
  const std::string data = dir() + "/islkd_kd_imagenet_norm_" + std::to_string(::getpid());
  ASSERT_TRUE(make_mixed_imagefolder(data));
  // A teacher whose order differs under the two normalisations (most seeds do; 99 does not).
  const std::string teacher = save_rgb2_teacher(data, 4);
  const std::vector<int64_t> imagenet = teacher_ce_order(teacher, data, "imagenet"),
                             half = teacher_ce_order(teacher, data, "half");
  ASSERT_EQ(imagenet.size(), 6u);
  ASSERT_NE(imagenet, half) << "the control: this teacher must order the split differently under the two";

  const std::string args = "--method isl --measure teacher-ce --curriculum-mode ordering --isl-warmup 0 --phases 1 "
                           "--phase-epochs 1 --epochs 2 --model resnet8 --teacher " + teacher +
                           " --teacher-model resnet8 --dataset imagefolder --data-path " + data +
                           " --image-size 24 --batch-size 2 --threads 2 --workers 2 --device cpu --seed 7 ";
  const std::string ck = data + "/imagenet.safetensors", metrics = data + "/imagenet.jsonl",
                    trace = data + "/imagenet_trace.txt";
  RunResult a = run_kd(args + "--normalization imagenet --out " + ck + " --metrics " + metrics + " --trace-batches " +
                           trace,
                       "imagenet_norm");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  const std::vector<std::string> m = lines_of(read_text(metrics));
  ASSERT_FALSE(m.empty());
  EXPECT_NE(m[0].find("\"config\""), std::string::npos) << m[0];
  EXPECT_NE(m[0].find("\"normalization\":\"imagenet\""), std::string::npos) << m[0];
  EXPECT_NE(read_text(ck).find("\\\"normalization\\\":\\\"imagenet\\\""), std::string::npos);

  // The phase is epoch 0 (no warm-up): its batches, in order, are the instances easiest first.
  std::vector<int64_t> phase;
  for (const std::string& line : lines_of(read_text(trace))) {
    std::istringstream in(line);
    int64_t epoch = -1, step = -1, idx;
    in >> epoch >> step;
    if (epoch != 0) continue;
    while (in >> idx) phase.push_back(idx);
  }
  EXPECT_EQ(phase, imagenet) << "the teacher did not see the imagenet-normalised images";

  RunResult other = run_kd(args + "--normalization half --resume " + ck + " --out " + data +
                               "/other.safetensors",
                           "imagenet_norm_other");
  EXPECT_EQ(other.exit_code, 1) << other.out << other.err;
  EXPECT_EQ(count_lines(other.err), 1) << other.err;
  EXPECT_NE(other.err.find("normalization = \"imagenet\", this run has \"half\""), std::string::npos) << other.err;
  RunResult without = run_kd(args + "--resume " + ck + " --out " + data + "/without.safetensors",
                             "imagenet_norm_without");
  EXPECT_EQ(without.exit_code, 1) << without.out << without.err;
  EXPECT_EQ(count_lines(without.err), 1) << without.err;
  EXPECT_NE(without.err.find("normalization = \"imagenet\", this run has null"), std::string::npos) << without.err;
}
