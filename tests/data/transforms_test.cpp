// Transforms: normalisation, crop/flip/cutout geometry against a plain reference, and determinism of the
// random choices in (seed, epoch, index).
#include <cmath>

#include "data/dataset.h"
#include "data/transforms.h"
#include "tests/common/test_util.h"
#include "tests/data/fixtures.h"

using namespace islkd;
using namespace islkd::data;

namespace {

TransformConfig config(int pad, bool flip, int cutout) {
  TransformConfig t;
  t.crop_padding = pad;
  t.hflip = flip;
  t.cutout = cutout;
  t.mean = {0.1f, 0.5f, 0.9f};
  t.std = {0.2f, 0.3f, 0.4f};
  return t;
}

std::vector<uint8_t> image(int c, int h, int w) {
  std::vector<uint8_t> v(static_cast<size_t>(c * h * w));
  for (int ch = 0; ch < c; ++ch)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) v[(ch * h + y) * w + x] = test::fixture_pixel(5, ch, y, x);
  return v;
}

// The torchvision pipeline spelled out: pad with zeros, crop at (dy, dx), flip, ToTensor, Normalize, cutout.
std::vector<float> reference(const std::vector<uint8_t>& src, int C, int H, int W, const TransformConfig& t,
                             const AugmentChoice& a) {
  const int P = t.crop_padding, PH = H + 2 * P, PW = W + 2 * P;
  std::vector<int> padded(static_cast<size_t>(C * PH * PW), 0);
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) padded[(c * PH + y + P) * PW + x + P] = src[(c * H + y) * W + x];
  std::vector<float> out(static_cast<size_t>(C * H * W));
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        int cx = a.flip ? W - 1 - x : x;
        float v = padded[(c * PH + y + a.dy) * PW + cx + a.dx] / 255.0f;
        out[(c * H + y) * W + x] = (v - t.mean[c]) / t.std[c];
      }
  if (t.cutout > 0)
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
          if (y >= a.cut_y - t.cutout / 2 && y < a.cut_y - t.cutout / 2 + t.cutout && x >= a.cut_x - t.cutout / 2 &&
              x < a.cut_x - t.cutout / 2 + t.cutout)
            out[(c * H + y) * W + x] = 0;
  return out;
}

}  // namespace

TEST(Transform, EvalNormalisesPerChannel) {
  auto src = image(3, 5, 6);
  TransformConfig t = config(0, false, 0);
  Transform tr(t, 3, 5, 6);
  std::vector<float> out(src.size());
  tr.apply(src.data(), out.data(), 1, 2, 3);
  std::vector<float> ref(src.size());
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 30; ++p) ref[c * 30 + p] = (src[c * 30 + p] / 255.0f - t.mean[c]) / t.std[c];
  EXPECT_TRUE(test::all_close(out, ref, 1e-6f, 1e-6f));
}

TEST(Transform, CropFlipCutoutMatchTheReferencePipeline) {
  auto src = image(3, 9, 7);
  for (int cutout : {0, 4}) {
    TransformConfig t = config(3, true, cutout);
    Transform tr(t, 3, 9, 7);
    for (int64_t index = 0; index < 40; ++index) {
      AugmentChoice a = tr.choose(77, 4, index);
      ASSERT_TRUE(a.dy >= 0 && a.dy <= 6 && a.dx >= 0 && a.dx <= 6);
      std::vector<float> out(src.size());
      tr.apply(src.data(), out.data(), 77, 4, index);
      EXPECT_TRUE(test::all_close(out, reference(src, 3, 9, 7, t, a), 1e-6f, 1e-6f)) << "index " << index;
    }
  }
}

TEST(Transform, RandomChoicesArePureFunctionsOfSeedEpochIndex) {
  Transform tr(config(4, true, 8), 3, 32, 32);
  int flips = 0, differs_by_epoch = 0, differs_by_seed = 0;
  std::vector<int> dy_hist(9);
  for (int64_t i = 0; i < 2000; ++i) {
    AugmentChoice a = tr.choose(1, 10, i), b = tr.choose(1, 10, i);
    EXPECT_EQ(a.dy, b.dy);
    EXPECT_EQ(a.dx, b.dx);
    EXPECT_EQ(a.flip, b.flip);
    EXPECT_EQ(a.cut_y, b.cut_y);
    AugmentChoice e = tr.choose(1, 11, i), s = tr.choose(2, 10, i);
    differs_by_epoch += (e.dy != a.dy || e.dx != a.dx || e.flip != a.flip);
    differs_by_seed += (s.dy != a.dy || s.dx != a.dx || s.flip != a.flip);
    flips += a.flip;
    dy_hist[a.dy]++;
  }
  EXPECT_GT(differs_by_epoch, 1500);
  EXPECT_GT(differs_by_seed, 1500);
  EXPECT_NEAR(flips, 1000, 150);
  for (int k = 0; k < 9; ++k) EXPECT_NEAR(dy_hist[k], 2000 / 9, 80) << "crop offset " << k;
}

TEST(Transform, PaddedPixelsNormaliseLikeZeroAndFlipOffMeansNoFlip) {
  Transform tr(config(2, false, 0), 3, 4, 4);
  std::vector<uint8_t> src(48, 255);
  AugmentChoice a;
  a.dy = 0, a.dx = 0;  // shifted down-right by 2: the top two rows and left two columns are padding
  std::vector<float> out(48);
  tr.apply(src.data(), out.data(), a);
  EXPECT_FLOAT_EQ(out[0], -0.1f / 0.2f);
  EXPECT_NEAR(out[2 * 4 + 2], (1.0f - 0.1f) / 0.2f, 1e-5);
  for (int64_t i = 0; i < 100; ++i) EXPECT_FALSE(tr.choose(3, 0, i).flip);
}

TEST(Transform, TrainRecipeFollowsTheDataset) {
  InMemoryDataset::Info info;
  info.class_names = {"a", "b"};
  info.norm = standard_normalization("svhn");
  info.hflip = false;
  InMemoryDataset ds(std::vector<uint8_t>(3 * 32 * 32, 0), {1}, 3, 32, 32, info);
  TransformConfig t = train_transform(ds);
  EXPECT_EQ(t.crop_padding, 4);
  EXPECT_FALSE(t.hflip);
  EXPECT_EQ(t.mean, standard_normalization("svhn").mean);
  TransformConfig e = eval_transform(ds);
  EXPECT_EQ(e.crop_padding, 0);
  EXPECT_FALSE(e.hflip);
  EXPECT_EQ(e.cutout, 0);
}

TEST(Transform, MismatchedNormalisationIsAnError) {
  TransformConfig t = config(0, false, 0);
  EXPECT_THROW(Transform(t, 1, 28, 28), Error);
  t.std[1] = 0;
  EXPECT_THROW(Transform(t, 3, 28, 28), Error);
}
