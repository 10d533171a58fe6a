// The first end-to-end slice: a small ResNet overfits 128 Fashion-MNIST images through the engine's own data,
// model, autograd, cross-entropy and SGD; and the `train` app resumes a run bit-identically on the CPU, keeps
// its per-epoch metrics, and turns bad arguments into one error line.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "models/registry.h"
#include "tests/common/test_util.h"

using namespace islkd;

namespace {

const std::string kTrainExe = std::string(ISLKD_BINARY_DIR) + "/apps/train";

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the train app with `args`, capturing stdout and stderr in files under the test's temp dir.
RunResult run_train(const std::string& args, const std::string& tag) {
  const std::string dir = ::testing::TempDir();
  const std::string out = dir + "/islkd_train_" + tag + ".out", err = dir + "/islkd_train_" + tag + ".err";
  // A folder of its own per run: default output names are relative to the working directory, and another test's
  // run under ctest -j would hold them (the app refuses a second writer of a file).
  const std::string cwd = dir + "/islkd_train_" + tag + ".cwd";
  std::filesystem::create_directories(cwd);
  const std::string cmd = "cd " + cwd + " && " + kTrainExe + " " + args + " > " + out + " 2> " + err;
  int status = std::system(cmd.c_str());
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

}  // namespace

TEST(TrainEndToEnd, ResNet8Overfits128FashionMnistImages) {
  auto ds = data::open_dataset("fashion-mnist", "", "train");
  const int64_t n = 128, batch = 32;
  const int64_t c = ds->channels(), h = ds->height(), w = ds->width();
  data::Transform norm(data::eval_transform(*ds), ds->channels(), ds->height(), ds->width());
  std::vector<float> pixels(static_cast<size_t>(n * c * h * w));
  std::vector<uint8_t> raw(static_cast<size_t>(ds->instance_bytes()));
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    ds->read(i, raw.data());
    norm.apply(raw.data(), pixels.data() + i * c * h * w, 0, 0, i);
    labels[static_cast<size_t>(i)] = ds->label(i);
  }

  models::ModelConfig mc;
  mc.num_classes = ds->num_classes();
  mc.in_channels = c;
  mc.seed = 1;
  auto model = models::create_model("resnet8", mc);
  SGDConfig oc;
  oc.lr = 0.1f;
  oc.momentum = 0.9f;
  oc.weight_decay = 0.0f;
  SGD opt(model->named_parameters(), oc);

  // Stops as soon as the subset is fitted (every image right, loss a tenth of the first epoch's), at most 40 epochs.
  double first_epoch_loss = 0.0, last_epoch_loss = 0.0;
  int64_t last_correct = 0;
  int epochs_run = 0;
  const int max_epochs = 40;
  for (int e = 0; e < max_epochs; ++e) {
    double loss_sum = 0.0;
    int64_t correct = 0;
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
      std::vector<float> xb(pixels.begin() + b0 * c * h * w, pixels.begin() + (b0 + batch) * c * h * w);
      std::vector<int32_t> yb(labels.begin() + b0, labels.begin() + b0 + batch);
      Tensor x = Tensor::from_vector(xb, {batch, c, h, w});
      opt.zero_grad();
      Tensor logits = (*model)(x);
      Tensor loss = ops::cross_entropy(logits, Tensor::from_labels(yb));
      loss.backward();
      opt.step();
      loss_sum += loss.item();
      std::vector<float> lv = logits.to_vector();
      for (int64_t r = 0; r < batch; ++r) {
        const float* row = lv.data() + r * mc.num_classes;
        int64_t best = 0;
        for (int64_t k = 1; k < mc.num_classes; ++k)
          if (row[k] > row[best]) best = k;
        correct += best == yb[static_cast<size_t>(r)];
      }
    }
    if (e == 0) first_epoch_loss = loss_sum / (n / batch);
    last_epoch_loss = loss_sum / (n / batch);
    last_correct = correct;
    epochs_run = e + 1;
    std::printf("epoch %d: loss %.4f, %lld/%lld right\n", e + 1, last_epoch_loss, static_cast<long long>(correct),
                static_cast<long long>(n));
    if (correct == n && last_epoch_loss < 0.1 * first_epoch_loss) break;
  }
  RecordProperty("epochs_to_fit", epochs_run);
  EXPECT_GT(first_epoch_loss, 1.5);  // ~ln(10) at the start
  EXPECT_LT(last_epoch_loss, 0.1 * first_epoch_loss) << "first " << first_epoch_loss << " last " << last_epoch_loss;
  EXPECT_GE(last_correct, n - 1) << "train accuracy in the last epoch: " << last_correct << "/" << n;
}

TEST(TrainApp, ResumedRunWritesTheSameCheckpointBytesAsAnUninterruptedOne) {
  const std::string dir = ::testing::TempDir();
  const std::string full = dir + "/islkd_full.safetensors", part = dir + "/islkd_part.safetensors",
                    resumed = dir + "/islkd_resumed.safetensors", metrics = dir + "/islkd_resumed.jsonl";
  std::remove(metrics.c_str());
  // The rate drops at epoch 1, so the resumed epoch also checks the schedule's continuation.
  const std::string common = "--model resnet8 --limit 256 --test-limit 128 --batch-size 64 --threads 2 --seed 7 "
                             "--device cpu --schedule multistep --milestones 1 --lr 0.05 --nesterov ";
  RunResult a = run_train(common + "--epochs 3 --out " + full, "full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("epoch 3/3"), std::string::npos) << a.out;
  RunResult b = run_train(common + "--epochs 2 --out " + part + " --metrics " + metrics, "part");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  RunResult c = run_train(common + "--epochs 3 --resume " + part + " --out " + resumed + " --metrics " + metrics,
                          "resumed");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("resuming"), std::string::npos) << c.out;

  const std::string full_bytes = read_text(full), part_bytes = read_text(part), resumed_bytes = read_text(resumed);
  ASSERT_GT(full_bytes.size(), 1000u);
  EXPECT_NE(full_bytes, part_bytes);  // the third epoch changed something
  EXPECT_TRUE(full_bytes == resumed_bytes) << "3 epochs (" << full_bytes.size() << " bytes) and 2 + 1 resumed ("
                                           << resumed_bytes.size() << " bytes) differ";
  // Metrics: the config line, then epochs 1 and 2 from the first run, 3 from the resumed one.
  std::string m = read_text(metrics);
  EXPECT_EQ(count_lines(m), 4) << m;
  EXPECT_NE(m.find("\"config\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"epoch\":3"), std::string::npos) << m;
}

TEST(TrainApp, BadArgumentsGiveOneErrorLineAndExitCode1) {
  struct Bad {
    std::string args, expect;
  };
  const std::string dir = ::testing::TempDir();
  {
    std::ofstream junk(dir + "/islkd_junk.safetensors");
    junk << "this is not a safetensors file";
  }
  const std::vector<Bad> cases = {
      {"--model resnet9000 --epochs 1", "resnet9000"},
      {"--model resnet8 --dataset fashion-mnist --data-path " + dir + "/no_such_dir --epochs 1", "no_such_dir"},
      {"--model resnet8 --limit 64 --test-limit 64 --epochs 1 --resume " + dir + "/islkd_junk.safetensors",
       "islkd_junk.safetensors"},
      {"--model resnet8 --limit 64 --epochs 1 --schedule triangle", "triangle"},
      {"--model resnet8 --limit 64 --epochs 1 --device tpu", "tpu"},
  };
  int k = 0;
  for (const Bad& c : cases) {
    RunResult r = run_train(c.args, "bad" + std::to_string(k++));
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
  }
}

TEST(TrainApp, OutOntoAFifoOrMetricsOntoADirectoryIsRefusedBeforeTrainingAndLeftAsItWas) {
  const std::string dir = ::testing::TempDir();
  const std::string fifo = dir + "/islkd_train_out_fifo", subdir = dir + "/islkd_train_metrics_dir";
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  ::mkdir(subdir.c_str(), 0755);
  struct Case {
    std::string args, path;
  };
  const std::vector<Case> cases = {
      {"--out " + fifo, fifo},
      {"--out " + dir + "/islkd_train_unused.safetensors --metrics " + subdir, subdir},
  };
  int k = 0;
  for (const Case& c : cases) {
    RunResult r = run_train("--model resnet8 --limit 64 --test-limit 32 --epochs 1 --device cpu " + c.args,
                            "refused" + std::to_string(k++));
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.path), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("epoch"), std::string::npos) << "training started:\n" << r.out;
  }
  struct stat st;
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::stat(subdir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  std::remove(fifo.c_str());
  ::rmdir(subdir.c_str());
}

// Two runs writing the same checkpoint: the second stops at start, naming the first (here the test process holds
// the lock on <out>.lock, as a running `train` does for its whole run).
TEST(TrainApp, ASecondRunWritingTheSameOutIsRefusedAtStartNamingTheFirst) {
  const std::string out = ::testing::TempDir() + "/islkd_train_locked.safetensors";
  const int fd = ::open((out + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string pid = std::to_string(::getpid());
  ASSERT_EQ(::ftruncate(fd, 0), 0);
  ASSERT_EQ(::write(fd, pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  RunResult r = run_train("--model resnet8 --limit 64 --test-limit 32 --epochs 1 --device cpu --out " + out, "locked");
  ::unlink((out + ".lock").c_str());
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(out), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pid " + pid), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("epoch"), std::string::npos) << r.out;
}

// A --batch-size near INT64_MAX made (n + batch - 1) / batch overflow: a negative batch count (the epoch never
// ended) or 0 test batches ("the test split is empty"). A batch larger than the split is the whole split in one
// step, as for any batch size above the split's size; each run is under `timeout 20` so a hang fails the test.
TEST(TrainApp, BatchSizeNearInt64MaxIsOneStepOfTheWholeSplitNotAHang) {
  const std::string out = ::testing::TempDir() + "/islkd_train_huge_batch.safetensors";
  for (const char* batch : {"9223372036854775608", "9223372036854775807"}) {
    const std::string dir = ::testing::TempDir();
    const std::string so = dir + "/islkd_train_huge_batch.out", se = dir + "/islkd_train_huge_batch.err";
    const int status =
        std::system(("timeout 20 " + kTrainExe + " --model resnet8 --limit 256 --test-limit 256 --epochs 1 "
                     "--device cpu --threads 2 --batch-size " + std::string(batch) + " --out " + out + " > " + so +
                     " 2> " + se).c_str());
    const std::string o = read_text(so), e = read_text(se);
    ASSERT_TRUE(WIFEXITED(status)) << batch;
    EXPECT_EQ(WEXITSTATUS(status), 0) << batch << " (124: timed out)\n" << o << e;
    EXPECT_NE(o.find("epoch 1/1"), std::string::npos) << batch << "\n" << o << e;
    EXPECT_EQ(e.find("error"), std::string::npos) << batch << "\n" << e;
  }
  std::remove(out.c_str());
}

// issue 17: an ImageFolder of mixed sizes (grey, RGBA and JPEG among RGB: tests/data/make_fixtures.py) trains at
// --image-size 24 on RandomResizedCrop + flip, resumes bit for bit, records the size, and `infer` evaluates the
// test split at the recorded size (resize + centre crop) without being told.
TEST(TrainApp, MixedSizeImageFolderTrainsAtAnImageSizeResumesAndInferUsesTheRecordedSize) {
  const std::string dir = ::testing::TempDir() + "/islkd_train_mixed";
  std::filesystem::remove_all(dir);
  const std::string make = std::string("/usr/bin/python3 ") + ISLKD_SOURCE_DIR + "/tests/data/make_fixtures.py '" +
                           dir + "' mixed_imagefolder";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  const std::string full = dir + "/full.safetensors", part = dir + "/part.safetensors",
                    resumed = dir + "/resumed.safetensors";
  const std::string common = "--dataset imagefolder --data-path " + dir + " --image-size 24 --model resnet8 "
                             "--batch-size 4 --threads 2 --workers 2 --seed 3 --device cpu --lr 0.05 ";
  RunResult a = run_train(common + "--epochs 2 --out " + full, "mixed_full");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("epoch 2/2"), std::string::npos) << a.out;
  RunResult b = run_train(common + "--epochs 1 --out " + part, "mixed_part");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  RunResult c = run_train(common + "--epochs 2 --resume " + part + " --out " + resumed, "mixed_resumed");
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  const std::string full_bytes = read_text(full), resumed_bytes = read_text(resumed);
  ASSERT_GT(full_bytes.size(), 1000u);
  EXPECT_TRUE(full_bytes == resumed_bytes) << "2 epochs and 1 + 1 resumed differ";
  EXPECT_NE(full_bytes.find("\\\"image_size\\\":24"), std::string::npos);      // the run's config
  EXPECT_NE(full_bytes.find("\\\"image_shape\\\":[3,24,24]"), std::string::npos);  // the data description

  // Resuming at another size (or none) is refused, naming the setting.
  RunResult d = run_train("--dataset imagefolder --data-path " + dir + " --image-size 32 --model resnet8 "
                          "--batch-size 4 --threads 2 --seed 3 --device cpu --epochs 2 --resume " + part + " --out " +
                              dir + "/other.safetensors",
                          "mixed_other");
  EXPECT_EQ(d.exit_code, 1) << d.out << d.err;
  EXPECT_NE(d.err.find("image_size = 24, this run has 32"), std::string::npos) << d.err;

  const std::string infer = std::string(ISLKD_BINARY_DIR) + "/apps/infer --device cpu --weights " + full +
                            " --data-path " + dir + " --split test > " + dir + "/infer.out 2>&1";
  ASSERT_EQ(std::system(infer.c_str()), 0) << read_text(dir + "/infer.out");
  EXPECT_NE(read_text(dir + "/infer.out").find("infer: imagefolder test, 4 images: top-1"), std::string::npos)
      << read_text(dir + "/infer.out");
}

// --normalization imagenet (teachers converted from torchvision's ImageNet ResNets): recorded in the checkpoint's
// config and data description, a --resume without it or with another is refused naming it, and `infer` on the test
// split reproduces the run's final test accuracy and loss exactly (so it reads the split with the same
// normalisation; with "half" it gets another loss). An unknown name is one error line listing the known ones.
TEST(TrainApp, ImagenetNormalizationIsRecordedCheckedOnResumeAndUsedByInfer) {
  const std::string dir = ::testing::TempDir() + "/islkd_train_imagenet_norm";
  std::filesystem::remove_all(dir);
  const std::string make = std::string("/usr/bin/python3 ") + ISLKD_SOURCE_DIR + "/tests/data/make_fixtures.py '" +
                           dir + "' mixed_imagefolder";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  const std::string ck = dir + "/imagenet.safetensors";
  const std::string common = "--dataset imagefolder --data-path " + dir + " --image-size 24 --model resnet8 "
                             "--batch-size 4 --threads 2 --workers 2 --seed 3 --device cpu --lr 0.05 ";
  RunResult a = run_train(common + "--normalization imagenet --epochs 1 --out " + ck, "imagenet_norm");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  const std::string bytes = read_text(ck);
  EXPECT_NE(bytes.find("\\\"normalization\\\":\\\"imagenet\\\""), std::string::npos);  // the run's config
  EXPECT_NE(bytes.find("\\\"name\\\":\\\"imagenet\\\""), std::string::npos);           // the data description

  RunResult without = run_train(common + "--epochs 2 --resume " + ck + " --out " + dir + "/without.safetensors",
                                "imagenet_norm_without");
  EXPECT_EQ(without.exit_code, 1) << without.out << without.err;
  EXPECT_NE(without.err.find("normalization = \"imagenet\", this run has null"), std::string::npos) << without.err;
  RunResult other = run_train(common + "--normalization half --epochs 2 --resume " + ck + " --out " + dir +
                                  "/other.safetensors",
                              "imagenet_norm_other");
  EXPECT_EQ(other.exit_code, 1) << other.out << other.err;
  EXPECT_NE(other.err.find("normalization = \"imagenet\", this run has \"half\""), std::string::npos) << other.err;

  // The epoch line: "... test loss L  test acc A%  ..."; infer prints "top-1 A%, top-5 ..., loss L".
  const size_t at = a.out.rfind("test loss ");
  ASSERT_NE(at, std::string::npos) << a.out;
  char loss[32] = {0}, acc[32] = {0};
  ASSERT_EQ(std::sscanf(a.out.c_str() + at, "test loss %31s test acc %31[0-9.]", loss, acc), 2) << a.out.substr(at);
  auto infer = [&](const std::string& extra) {
    const std::string cmd = std::string(ISLKD_BINARY_DIR) + "/apps/infer --device cpu --batch 4 --weights " + ck +
                            " --data-path " + dir + " --split test " + extra + " > " + dir + "/infer.out 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << read_text(dir + "/infer.out");
    return read_text(dir + "/infer.out");
  };
  const std::string same = infer("");
  EXPECT_NE(same.find("top-1 " + std::string(acc) + "%"), std::string::npos) << same << "train: " << acc;
  EXPECT_NE(same.find("loss " + std::string(loss) + "\n"), std::string::npos) << same << "train: " << loss;
  // The control: the full-precision loss (--json) changes with the normalisation (a one-epoch model is near
  // uniform, so the printed 4 digits may not).
  infer("--json " + dir + "/imagenet.json");
  infer("--normalization half --json " + dir + "/half.json");
  const std::string ij = read_text(dir + "/imagenet.json"), hj = read_text(dir + "/half.json");
  const size_t il = ij.find("\"loss\":"), hl = hj.find("\"loss\":");
  ASSERT_NE(il, std::string::npos) << ij;
  ASSERT_NE(hl, std::string::npos) << hj;
  EXPECT_NE(ij.substr(il, 30), hj.substr(hl, 30));

  RunResult bad = run_train(common + "--normalization imagenet1k --epochs 1 --out " + dir + "/bad.safetensors",
                            "imagenet_norm_bad");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(count_lines(bad.err), 1) << bad.err;
  EXPECT_NE(bad.err.find("unknown normalisation 'imagenet1k' (known: cifar10, cifar100, svhn, cinic10, "
                         "fashion-mnist, mnist, imagenet, half)"),
            std::string::npos)
      << bad.err;
}

// An override whose channel count is not the dataset's (ImageNet's three on Fashion-MNIST's one) is one error line.
TEST(TrainApp, NormalizationWithAnotherChannelCountIsRefused) {
  RunResult r = run_train("--normalization imagenet --limit 64 --test-limit 64 --epochs 1 --device cpu --threads 2 "
                          "--out " + ::testing::TempDir() + "/islkd_train_norm_channels.safetensors",
                          "norm_channels");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("normalisation 'imagenet' is for 3-channel images, these have 1"), std::string::npos) << r.err;
}
