// ImageFolder reader: class order, lossless PNG values, grayscale to RGB, and the malformed-tree errors.
#include <functional>

#include "data/dataset.h"
#include "data/transforms.h"
#include "kernels/common/error.h"
#include "tests/common/test_util.h"
#include "tests/data/fixtures.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

using namespace islkd;
using namespace islkd::data;

namespace {

void append(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

// PNG of fixture instance n (h x w, `comp` channels: 1 gray or 3 RGB).
void write_png(const std::string& path, int64_t n, int h, int w, int comp = 3) {
  std::vector<uint8_t> hwc(static_cast<size_t>(h * w * comp));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) hwc[(y * w + x) * comp + c] = test::fixture_pixel(n, c, y, x);
  std::vector<uint8_t> png;
  ASSERT_TRUE(stbi_write_png_to_func(append, &png, w, h, comp, hwc.data(), w * comp));
  test::write_bytes(path, png);
}

using test::error_of;

}  // namespace

TEST(ImageFolder, ClassesSortedByNameAndPngValuesExact) {
  test::TempDir dir;
  // Created out of order: the reader sorts classes and files by name, as torchvision does.
  write_png(dir / "train/zebra/b.png", 3, 6, 5);
  write_png(dir / "train/zebra/a.png", 2, 6, 5);
  write_png(dir / "train/ant/x.PNG", 1, 6, 5);
  write_png(dir / "train/ant/sub/y.png", 4, 6, 5);
  test::write_bytes(dir / "train/ant/notes.txt", {'h', 'i'});  // not an image: ignored
  auto ds = open_dataset("imagefolder", dir.str(), "train");
  ASSERT_EQ(ds->size(), 4);
  EXPECT_EQ(ds->class_names(), (std::vector<std::string>{"ant", "zebra"}));
  EXPECT_EQ(ds->labels(), (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(ds->channels(), 3);
  EXPECT_EQ(ds->height(), 6);
  EXPECT_EQ(ds->width(), 5);
  EXPECT_EQ(ds->normalization().name, "half");
  const int64_t fixture_of[] = {1, 4, 2, 3};  // ant/x, ant/sub/y, zebra/a, zebra/b (folder, then file name)
  std::vector<uint8_t> px(3 * 6 * 5);
  for (int64_t i = 0; i < 4; ++i) {
    ds->read(i, px.data());
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 5; ++x)
          ASSERT_EQ(px[(c * 6 + y) * 5 + x], test::fixture_pixel(fixture_of[i], c, y, x)) << "instance " << i;
  }
}

TEST(ImageFolder, GrayscaleImagesBecomeRgb) {
  test::TempDir dir;
  write_png(dir / "test/one/g.png", 7, 4, 4, 1);
  auto ds = open_dataset("imagefolder", dir.str(), "test");
  std::vector<uint8_t> px(48);
  ds->read(0, px.data());
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 16; ++p) EXPECT_EQ(px[c * 16 + p], test::fixture_pixel(7, 0, p / 4, p % 4));
}

TEST(ImageFolder, Cinic10FormatUsesCinicNormalisation) {
  test::TempDir dir;
  for (const char* c : {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"})
    write_png(dir / (std::string("valid/") + c + "/1.png"), 0, 32, 32);
  auto ds = open_dataset("cinic10", dir.str(), "valid");
  EXPECT_EQ(ds->num_classes(), 10);
  EXPECT_EQ(ds->normalization().name, "cinic10");
  EXPECT_EQ(open_dataset("imagefolder", dir.str(), "valid")->normalization().name, "cinic10");
}

// --normalization imagenet (teachers converted from torchvision): the dataset reports torchvision's ImageNet
// mean/std instead of "half", and the evaluation transform applies them; a 1-channel normalisation on RGB images
// and an unknown name are one-line errors.
TEST(ImageFolder, ImagenetNormalizationIsReportedAndAppliedByTheTransform) {
  test::TempDir dir;
  write_png(dir / "train/ant/a.png", 1, 4, 4);
  DatasetOptions o;
  o.normalization = "imagenet";
  auto ds = open_dataset("imagefolder", dir.str(), "train", o);
  EXPECT_EQ(ds->normalization().name, "imagenet");
  EXPECT_EQ(ds->normalization().mean, (std::vector<float>{0.485f, 0.456f, 0.406f}));
  EXPECT_EQ(ds->normalization().std, (std::vector<float>{0.229f, 0.224f, 0.225f}));
  EXPECT_EQ(open_dataset("imagefolder", dir.str(), "train")->normalization().name, "half");  // the default stays

  std::vector<uint8_t> px(3 * 4 * 4);
  ds->read(0, px.data());
  std::vector<float> x(px.size());
  Transform(eval_transform(*ds), 3, 4, 4).apply(px.data(), x.data(), 0, 0, 0);
  // Pixel (0, 0) of fixture 1 is 37, 138, 239: (v / 255 - mean) / std, worked out in double precision.
  ASSERT_EQ(px[0], 37);
  ASSERT_EQ(px[16], 138);
  ASSERT_EQ(px[32], 239);
  EXPECT_NEAR(x[0], -1.4842880, 1e-5);
  EXPECT_NEAR(x[16], 0.3802521, 1e-5);
  EXPECT_NEAR(x[32], 2.3611329, 1e-5);
  const float mean[] = {0.485f, 0.456f, 0.406f}, stdev[] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 16; ++p)
      EXPECT_NEAR(x[c * 16 + p], (px[c * 16 + p] / 255.0 - mean[c]) / stdev[c], 1e-5) << c << " " << p;

  o.normalization = "mnist";
  const std::string one = error_of([&] { open_dataset("imagefolder", dir.str(), "train", o); });
  EXPECT_NE(one.find("normalisation 'mnist' is for 1-channel images, these have 3"), std::string::npos) << one;
  o.normalization = "imagenet1k";
  const std::string bad = error_of([&] { open_dataset("imagefolder", dir.str(), "train", o); });
  EXPECT_NE(bad.find("unknown normalisation 'imagenet1k' (known: cifar10, cifar100, svhn, cinic10, fashion-mnist, "
                     "mnist, imagenet, half)"),
            std::string::npos)
      << bad;
  EXPECT_EQ(bad.find('\n'), std::string::npos);
}

TEST(ImageFolder, EmptyClassFolderIsAnErrorNamingIt) {
  test::TempDir dir;
  write_png(dir / "train/a/1.png", 0, 4, 4);
  std::filesystem::create_directories(dir / "train/b");
  std::string msg = error_of([&] { open_dataset("imagefolder", dir.str(), "train"); });
  EXPECT_NE(msg.find("train/b: empty class folder"), std::string::npos) << msg;
}

TEST(ImageFolder, UnreadableImageIsAnErrorNamingTheFile) {
  test::TempDir dir;
  write_png(dir / "train/a/1.png", 0, 4, 4);
  test::write_bytes(dir / "train/a/2.png", {0x89, 'P', 'N', 'G', 1, 2, 3});
  auto ds = open_dataset("imagefolder", dir.str(), "train");
  std::vector<uint8_t> px(48);
  std::string msg = error_of([&] { ds->read(1, px.data()); });
  EXPECT_NE(msg.find("a/2.png: cannot decode image"), std::string::npos) << msg;
}

TEST(ImageFolder, WronglySizedImageIsAnErrorNamingTheFile) {
  test::TempDir dir;
  write_png(dir / "train/a/1.png", 0, 4, 4);
  write_png(dir / "train/a/2.png", 0, 5, 4);
  auto ds = open_dataset("imagefolder", dir.str(), "train");
  std::vector<uint8_t> px(48);
  std::string msg = error_of([&] { ds->read(1, px.data()); });
  EXPECT_NE(msg.find("a/2.png: image is 4x5, the dataset's images are 4x4 (entry 1)"), std::string::npos) << msg;
}

TEST(ImageFolder, MissingSplitIsAnError) {
  test::TempDir dir;
  std::string msg = error_of([&] { open_dataset("imagefolder", dir.str(), "train"); });
  EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
}
