// ImageFolder with an image size (images of any size read as S x S): evaluation's Resize + CenterCrop and the
// crop-then-resize of RandomResizedCrop against torchvision/PIL run on the same files (tests/data/make_fixtures.py
// mixed_imagefolder), RandomResizedCrop's choices, the loader's use of them, and the errors on bad files.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "data/crop_resize.h"
#include "data/dataset.h"
#include "data/formats.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "kernels/common/error.h"
#include "kernels/common/regular_file.h"
#include "tests/common/test_util.h"
#include "tests/data/fixtures.h"

using namespace islkd;
using namespace islkd::data;

namespace {

// The mixed-size folder, written once per test binary by make_fixtures.py (PIL, torchvision under /usr/bin/python3).
const std::string& mixed_dir() {
  static test::TempDir* dir = [] {
    auto* d = new test::TempDir;
    const std::string cmd = std::string("/usr/bin/python3 ") + ISLKD_SOURCE_DIR + "/tests/data/make_fixtures.py '" +
                            (*d / "m") + "' mixed_imagefolder";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return d;
  }();
  static const std::string path = *dir / "m";
  return path;
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// (relative path, label) per instance, in torchvision.datasets.ImageFolder's order.
std::vector<std::pair<std::string, int>> reference_files(const std::string& split) {
  std::ifstream f(mixed_dir() + "/ref_files_" + split + ".txt");
  std::vector<std::pair<std::string, int>> out;
  std::string path;
  int label;
  while (f >> path >> label) out.emplace_back(path, label);
  return out;
}

bool is_jpeg(const std::string& path) { return path.size() > 4 && path.substr(path.size() - 4) == ".jpg"; }

int max_abs_diff(const uint8_t* a, const uint8_t* b, size_t n) {
  int worst = 0;
  for (size_t k = 0; k < n; ++k) worst = std::max(worst, std::abs(int(a[k]) - int(b[k])));
  return worst;
}

// The boxes of make_fixtures.py crop_boxes().
std::vector<CropBox> crop_boxes(int w, int h) {
  return {{0, 0, w, h}, {w / 4, h / 5, std::max(1, w / 2), std::max(1, h / 2)}, {w - 1 - w / 3, 0, w / 3 + 1, h}};
}

DatasetOptions sized(int s) {
  DatasetOptions o;
  o.image_size = s;
  return o;
}

}  // namespace

// PNGs decode losslessly in both stb_image and PIL, so the resampling must agree bit for bit (we implement Pillow's
// filter). The JPEG's decoders differ (IDCT rounding: up to 4 levels, see PythonFixtures.ImageFolderFromPil...),
// and a bilinear filter is an average with weights summing to 1, so the difference can grow by at most one
// rounding step: 5.
TEST(ImageFolderAnySize, EvalResizeAndCenterCropMatchTorchvisionExactlyOnPngs) {
  for (const std::string split : {"train", "test"}) {
    const auto files = reference_files(split);
    ASSERT_FALSE(files.empty());
    for (int s : {24, 32}) {
      auto ds = open_dataset("imagefolder", mixed_dir(), split, sized(s));
      ASSERT_EQ(ds->size(), static_cast<int64_t>(files.size()));
      EXPECT_EQ(ds->channels(), 3);
      EXPECT_EQ(ds->height(), s);
      EXPECT_EQ(ds->width(), s);
      EXPECT_TRUE(ds->has_train_crop());
      const std::vector<uint8_t> ref =
          read_all(mixed_dir() + "/ref_eval_" + split + "_" + std::to_string(s) + ".bin");
      const size_t per = static_cast<size_t>(3 * s * s);
      ASSERT_EQ(ref.size(), per * files.size());
      std::vector<uint8_t> px(per);
      for (size_t i = 0; i < files.size(); ++i) {
        EXPECT_EQ(ds->label(static_cast<int64_t>(i)), files[i].second);
        ds->read(static_cast<int64_t>(i), px.data());
        const int diff = max_abs_diff(px.data(), ref.data() + i * per, per);
        EXPECT_LE(diff, is_jpeg(files[i].first) ? 5 : 0) << files[i].first << " at size " << s;
      }
    }
  }
}

TEST(ImageFolderAnySize, CropThenResizeMatchesPilResizedCropExactlyOnPngs) {
  for (const std::string split : {"train", "test"}) {
    const auto files = reference_files(split);
    const std::vector<uint8_t> ref = read_all(mixed_dir() + "/ref_crops_" + split + ".bin");
    const size_t per = 3 * 24 * 24;
    ASSERT_EQ(ref.size(), per * 3 * files.size());
    std::vector<uint8_t> px(per);
    for (size_t i = 0; i < files.size(); ++i) {
      if (is_jpeg(files[i].first)) continue;
      const std::string path = mixed_dir() + "/" + files[i].first;
      const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxImageFileBytes);
      const RgbImage img = decode_image_rgb(bytes.data(), bytes.size(), path);
      const std::vector<CropBox> boxes = crop_boxes(img.w, img.h);
      for (size_t k = 0; k < boxes.size(); ++k) {
        const CropBox& b = boxes[k];
        resize_bilinear_pil(img.rgb.data() + (static_cast<size_t>(b.y) * img.w + b.x) * 3, img.w * 3, b.w, b.h, 24,
                            24, CropBox{0, 0, 24, 24}, px.data());
        EXPECT_EQ(max_abs_diff(px.data(), ref.data() + (i * 3 + k) * per, per), 0)
            << files[i].first << " box " << k << " (" << b.x << "," << b.y << " " << b.w << "x" << b.h << ")";
      }
    }
  }
}

TEST(ImageFolderAnySize, EvalSizesFollowTorchvisionResizeAndCenterCrop) {
  EXPECT_EQ(eval_resize_size(224), 256);
  EXPECT_EQ(eval_resize_size(32), 37);
  EXPECT_EQ(eval_resize_size(24), 27);
  // 500 x 375 at 224: shorter side 256, longer int(256 * 500 / 375) = 341; crop left round(117 / 2) = 58 (half to
  // even), top 16.
  ResizeAndWindow r = center_crop_after_resize(500, 375, 224);
  EXPECT_EQ(r.resized_w, 341);
  EXPECT_EQ(r.resized_h, 256);
  EXPECT_EQ(r.window.x, 58);
  EXPECT_EQ(r.window.y, 16);
  r = center_crop_after_resize(9, 50, 24);  // tall: width 27, height int(27 * 50 / 9) = 150
  EXPECT_EQ(r.resized_w, 27);
  EXPECT_EQ(r.resized_h, 150);
  EXPECT_EQ(r.window.x, 2);  // round(1.5) = 2
  EXPECT_EQ(r.window.y, 63);
}

TEST(RandomResizedCrop, SameKeysSameBoxAlwaysInsideWithinScaleAndRatio) {
  int fallbacks = 0, distinct_epochs = 0, total = 0;
  for (auto [w, h] : std::vector<std::pair<int, int>>{{20, 30}, {47, 33}, {64, 64}, {9, 50}, {300, 200}, {1, 1}, {2, 300}}) {
    for (int64_t index = 0; index < 200; ++index) {
      bool fb = false, fb2 = false;
      const CropBox b = random_resized_crop_box(w, h, 5, 3, index, &fb);
      const CropBox again = random_resized_crop_box(w, h, 5, 3, index, &fb2);
      EXPECT_TRUE(b.x == again.x && b.y == again.y && b.w == again.w && b.h == again.h && fb == fb2);
      const CropBox other = random_resized_crop_box(w, h, 5, 4, index);
      distinct_epochs += other.x != b.x || other.y != b.y || other.w != b.w || other.h != b.h;
      ++total;
      ASSERT_TRUE(b.w >= 1 && b.h >= 1 && b.x >= 0 && b.y >= 0 && b.x + b.w <= w && b.y + b.h <= h)
          << w << "x" << h << " index " << index << ": " << b.x << "," << b.y << " " << b.w << "x" << b.h;
      fallbacks += fb;
      if (fb) continue;
      // The drawn area and ratio are within bounds before rounding each side to the nearest integer (+-0.5).
      const double area = double(w) * h;
      EXPECT_LE((b.w - 0.5) * (b.h - 0.5), area + 1e-9);
      EXPECT_GE((b.w + 0.5) * (b.h + 0.5), 0.08 * area - 1e-9);
      EXPECT_LE((b.w - 0.5) / (b.h + 0.5), 4.0 / 3.0 + 1e-9);
      EXPECT_GE((b.w + 0.5) / (b.h - 0.5), 3.0 / 4.0 - 1e-9);
    }
  }
  EXPECT_GT(distinct_epochs, total / 2);  // the epoch is a key
  EXPECT_GE(fallbacks, 200);              // every 2x300 draw (and a few 9x50 ones) falls back
  EXPECT_LT(fallbacks, total / 2);
}

TEST(RandomResizedCrop, ExtremeAspectFallsBackToTheCentreAtTheRatioBound) {
  bool fb = false;
  // 2 x 300: every try needs a width >= sqrt(0.08 * 600 * 3/4) = 6 > 2. Fallback: width 2, height round(2 / 0.75)
  // = 3, centred: top (300 - 3) // 2 = 148.
  CropBox b = random_resized_crop_box(2, 300, 0, 0, 7, &fb);
  EXPECT_TRUE(fb);
  EXPECT_EQ(b.x, 0);
  EXPECT_EQ(b.y, 148);
  EXPECT_EQ(b.w, 2);
  EXPECT_EQ(b.h, 3);
  b = random_resized_crop_box(300, 2, 0, 0, 7, &fb);
  EXPECT_TRUE(fb);
  EXPECT_EQ(b.w, 3);  // round(2 * 4/3)
  EXPECT_EQ(b.h, 2);
  EXPECT_EQ(b.x, 148);
  EXPECT_EQ(b.y, 0);
  b = random_resized_crop_box(1, 1, 0, 0, 7, &fb);  // a 1x1 crop fits (or falls back to the whole image)
  EXPECT_TRUE(b.x == 0 && b.y == 0 && b.w == 1 && b.h == 1);
}

TEST(ImageFolderAnySize, TrainingReadsARandomResizedCropKeyedBySeedEpochIndex) {
  auto ds = open_dataset("imagefolder", mixed_dir(), "train", sized(24));
  ASSERT_TRUE(ds->has_train_crop());
  const TransformConfig t = train_transform(*ds);
  EXPECT_TRUE(t.dataset_crop);
  EXPECT_EQ(t.crop_padding, 0);  // RandomResizedCrop replaces the padded crop
  EXPECT_TRUE(t.hflip);
  EXPECT_FALSE(eval_transform(*ds).dataset_crop);
  std::vector<uint8_t> a(3 * 24 * 24), b(a.size()), c(a.size());
  int differ = 0;
  for (int64_t i = 0; i < ds->size(); ++i) {
    ds->read_train_crop(i, a.data(), 3, 1);
    ds->read_train_crop(i, b.data(), 3, 1);
    EXPECT_EQ(a, b) << "instance " << i;
    ds->read_train_crop(i, c.data(), 3, 2);
    differ += a != c;
  }
  EXPECT_GE(differ, ds->size() - 1);
  // Images as stored (no size): no crop of the dataset's own, the padded crop as before.
  test::TempDir dir;
  std::filesystem::create_directories(dir / "train/x");
  std::filesystem::copy_file(mixed_dir() + "/train/a/1_rgb.png", dir / "train/x/1.png");
  auto plain = open_dataset("imagefolder", dir.str(), "train");
  EXPECT_FALSE(plain->has_train_crop());
  EXPECT_FALSE(train_transform(*plain).dataset_crop);
  EXPECT_EQ(train_transform(*plain).crop_padding, 30 / 8);
}

TEST(ImageFolderAnySize, LoaderBatchesAreTheSameForAnyWorkerCount) {
  auto ds = open_dataset("imagefolder", mixed_dir(), "train", sized(24));
  auto batches = [&](int workers, int64_t epoch) {
    LoaderOptions o;
    o.batch_size = 4;
    o.workers = workers;
    o.seed = 11;
    Loader loader(ds, Transform(train_transform(*ds), 3, 24, 24), std::make_shared<ShuffledSampler>(ds->size(), 11),
                  o);
    loader.start_epoch(epoch);
    std::vector<float> all;
    Batch b;
    while (loader.next(b)) {
      const std::vector<float> v = b.images.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  const std::vector<float> one = batches(1, 0);
  ASSERT_EQ(one.size(), static_cast<size_t>(ds->size() * 3 * 24 * 24));
  EXPECT_EQ(one, batches(3, 0));
  EXPECT_NE(one, batches(1, 1));
}

TEST(ImageFolderAnySize, CorruptFileIsAnErrorNamingTheFileAndTheInstance) {
  auto ds = open_dataset("imagefolder", mixed_dir() + "/corrupt", "train", sized(24));  // a_ok.png opens it
  ASSERT_EQ(ds->size(), 3);
  std::vector<uint8_t> px(3 * 24 * 24);
  ds->read(0, px.data());
  std::string msg = test::error_of([&] { ds->read(1, px.data()); });
  EXPECT_NE(msg.find("b_truncated.png: cannot decode image"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(entry 1)"), std::string::npos) << msg;
  msg = test::error_of([&] { ds->read_train_crop(2, px.data(), 0, 0); });
  EXPECT_NE(msg.find("c_garbage.jpg: cannot decode image"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(entry 2)"), std::string::npos) << msg;
  // Through the loader's worker threads, the error reaches the consumer at that batch.
  LoaderOptions o;
  o.batch_size = 1;
  o.workers = 2;
  Loader loader(ds, Transform(train_transform(*ds), 3, 24, 24), std::make_shared<SequentialSampler>(3), o);
  loader.start_epoch(0);
  Batch b;
  EXPECT_TRUE(loader.next(b));
  msg = test::error_of([&] { loader.next(b); });
  EXPECT_NE(msg.find("b_truncated.png"), std::string::npos) << msg;
  // The first file corrupt: an error at open, naming it.
  test::TempDir dir;
  std::filesystem::create_directories(dir / "train/a");
  std::filesystem::copy_file(mixed_dir() + "/corrupt/train/b/c_garbage.jpg", dir / "train/a/x.jpg");
  msg = test::error_of([&] { open_dataset("imagefolder", dir.str(), "train", sized(24)); });
  EXPECT_NE(msg.find("x.jpg: cannot decode image"), std::string::npos) << msg;
}

TEST(ImageFolderAnySize, HugeOrEmptyImagesAreRefusedByTheirHeader) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "train/a");
  std::filesystem::copy_file(mixed_dir() + "/train/a/1_rgb.png", dir / "train/a/1.png");
  std::vector<uint8_t> png = read_all(mixed_dir() + "/train/a/1_rgb.png");
  auto with_size = [&](uint32_t w, uint32_t h) {  // IHDR width/height at bytes 16..23, big-endian
    std::vector<uint8_t> p = png;
    if (p.size() < 24) return p;  // (never: make_fixtures wrote a PNG; keeps -Wstringop-overflow quiet)
    for (int k = 0; k < 4; ++k) p[16 + k] = uint8_t(w >> (24 - 8 * k)), p[20 + k] = uint8_t(h >> (24 - 8 * k));
    return p;
  };
  test::write_bytes(dir / "train/a/2.png", with_size(20000, 20000));
  test::write_bytes(dir / "train/a/3.png", with_size(0, 30));
  auto ds = open_dataset("imagefolder", dir.str(), "train", sized(24));
  std::vector<uint8_t> px(3 * 24 * 24);
  std::string msg = test::error_of([&] { ds->read(1, px.data()); });
  EXPECT_NE(msg.find("2.png: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("(entry 1)"), std::string::npos) << msg;
  msg = test::error_of([&] { ds->read_train_crop(2, px.data(), 0, 0); });
  EXPECT_NE(msg.find("3.png: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("(entry 2)"), std::string::npos) << msg;
}

TEST(ImageFolderAnySize, ImageSizeIsRefusedForOtherFormatsAndOutOfRange) {
  test::TempDir dir;
  std::string msg = test::error_of([&] { open_dataset("cifar10", dir.str(), "train", sized(24)); });
  EXPECT_NE(msg.find("applies to ImageFolder datasets only"), std::string::npos) << msg;
  msg = test::error_of([&] { open_dataset("imagefolder", mixed_dir(), "train", sized(5000)); });
  EXPECT_NE(msg.find("outside 1..4096"), std::string::npos) << msg;
}
