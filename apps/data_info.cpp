// data_info: a quick check that a dataset download is read correctly — counts, per-class counts, per-channel
// pixel statistics of the raw 0..255 values, and the first labels; for an ImageFolder, the distribution of the
// stored image sizes (from the file headers) and the --image-size the reader applies.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "apps/app_main.h"
#include "data/crop_resize.h"
#include "data/dataset.h"
#include "data/formats.h"
#include "kernels/common/regular_file.h"
#include "kernels/common/error.h"

using namespace islkd;

namespace {

struct ChannelSums {
  std::vector<uint64_t> sum, sum_sq;
};

// Sums over all pixels of all instances, split across threads (ImageFolder decodes every image).
ChannelSums pixel_sums(const data::Dataset& ds) {
  const int C = ds.channels();
  const int64_t n = ds.size(), per = ds.instance_bytes(), plane = per / C;
  const int threads = static_cast<int>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 8));
  std::vector<ChannelSums> part(threads, ChannelSums{std::vector<uint64_t>(C), std::vector<uint64_t>(C)});
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        std::vector<uint8_t> px(static_cast<size_t>(per));
        for (int64_t i = t; i < n; i += threads) {
          ds.read(i, px.data());
          for (int c = 0; c < C; ++c) {
            uint64_t s = 0, q = 0;
            for (int64_t p = 0; p < plane; ++p) {
              const uint64_t v = px[c * plane + p];
              s += v;
              q += v * v;
            }
            part[t].sum[c] += s;
            part[t].sum_sq[c] += q;
          }
        }
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  ChannelSums total{std::vector<uint64_t>(C), std::vector<uint64_t>(C)};
  for (const auto& p : part)
    for (int c = 0; c < C; ++c) total.sum[c] += p.sum[c], total.sum_sq[c] += p.sum_sq[c];
  return total;
}

// The stored sizes of an ImageFolder's files, from their headers only (stbi_info; no pixels decoded).
void print_size_distribution(const std::vector<std::string>& files, int image_size) {
  std::vector<int> ws, hs;
  std::vector<std::pair<int, int>> sizes;
  int64_t by_channels[5] = {0, 0, 0, 0, 0};
  for (const std::string& f : files) {
    const std::vector<uint8_t> bytes = data::read_file_bytes(f, kMaxImageFileBytes);
    const data::ImageInfo info = data::read_image_info(bytes.data(), bytes.size(), f);
    ws.push_back(info.w);
    hs.push_back(info.h);
    sizes.emplace_back(info.w, info.h);
    if (info.channels >= 1 && info.channels <= 4) ++by_channels[info.channels];
  }
  if (files.empty()) return;
  std::sort(ws.begin(), ws.end());
  std::sort(hs.begin(), hs.end());
  std::sort(sizes.begin(), sizes.end());
  const auto distinct = std::unique(sizes.begin(), sizes.end()) - sizes.begin();
  const size_t mid = (ws.size() - 1) / 2;  // the lower median
  std::printf("stored sizes (%zu files, headers only): width min %d median %d max %d; height min %d median %d max %d; "
              "%lld distinct sizes\n",
              files.size(), ws.front(), ws[mid], ws.back(), hs.front(), hs[mid], hs.back(),
              static_cast<long long>(distinct));
  std::printf("stored channels: %lld grey, %lld grey+alpha, %lld RGB, %lld RGBA (all read as RGB)\n",
              static_cast<long long>(by_channels[1]), static_cast<long long>(by_channels[2]),
              static_cast<long long>(by_channels[3]), static_cast<long long>(by_channels[4]));
  if (image_size > 0)
    std::printf("image size: %d (evaluation: shorter side resized to %d, centre %dx%d crop; training: "
                "RandomResizedCrop %dx%d + flip; Pillow bilinear)\n",
                image_size, data::eval_resize_size(image_size), image_size, image_size, image_size, image_size);
  else
    std::printf("image size: as stored (no --image-size: every image must have the first image's size%s)\n",
                distinct > 1 ? "; these differ, so give --image-size" : "");
}

int run(int argc, char** argv) {
  CLI::App app{"data_info: prints what a dataset reader sees (counts, classes, pixel statistics, first labels)"};
  std::string format, path, split = "train", norm;
  bool coarse = false;
  int image_size = 0;
  app.add_option("--format", format, "cifar10|cifar100|svhn|imagefolder|cinic10|idx|mnist|fashion-mnist")->required();
  app.add_option("--path", path, "dataset folder (fashion-mnist defaults to the Debian package's folder)");
  app.add_option("--split", split, "train|test (svhn: extra; cinic10: valid; imagefolder: any subfolder)");
  app.add_flag("--coarse", coarse, "CIFAR-100: the 20 coarse labels");
  app.add_option("--image-size", image_size,
                 "imagefolder/cinic10: read images of any size as S x S (as train --image-size; the pixel statistics "
                 "are then those of the evaluation crops)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--normalization", norm,
                 "normalise with this mean/std instead of the format's own (as train --normalization: " +
                     data::known_normalizations() + ")");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  data::DatasetOptions opt;
  opt.cifar100_coarse = coarse;
  opt.image_size = image_size;
  opt.normalization = norm;
  auto ds = data::open_dataset(format, path, split, opt);

  std::printf("source:     %s\n", ds->source().c_str());
  std::printf("split:      %s\n", split.c_str());
  std::printf("instances:  %lld\n", static_cast<long long>(ds->size()));
  std::printf("image:      %d x %d x %d (C x H x W)\n", ds->channels(), ds->height(), ds->width());
  std::printf("classes:    %d\n", ds->num_classes());
  std::vector<int64_t> counts(static_cast<size_t>(ds->num_classes()));
  for (int32_t l : ds->labels()) counts[static_cast<size_t>(l)]++;
  for (int c = 0; c < ds->num_classes(); ++c)
    std::printf("  %3d %-32s %lld\n", c, ds->class_names()[c].c_str(), static_cast<long long>(counts[c]));

  print_size_distribution(data::image_folder_files(*ds), image_size);
  const data::Normalization& n = ds->normalization();
  std::string numbers;
  for (size_t c = 0; c < n.mean.size(); ++c) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%.4f/%.4f", c ? ", " : "", n.mean[c], n.std[c]);
    numbers += buf;
  }
  std::printf("normalisation: %s (mean/std per channel %s; %s)\n", n.name.c_str(), numbers.c_str(),
              norm.empty() ? "the format's own" : "--normalization");

  ChannelSums s = pixel_sums(*ds);
  const double count = static_cast<double>(ds->size()) * ds->height() * ds->width();
  std::printf("pixel mean/std per channel (raw 0..255):\n");
  for (int c = 0; c < ds->channels(); ++c) {
    const double mean = count > 0 ? s.sum[c] / count : 0.0;
    const double var = count > 0 ? std::max(0.0, s.sum_sq[c] / count - mean * mean) : 0.0;
    std::printf("  channel %d: mean %.3f std %.3f  (0..1 scale: %.4f / %.4f; standard %s: %.4f / %.4f)\n", c, mean,
                std::sqrt(var), mean / 255, std::sqrt(var) / 255, ds->normalization().name.c_str(),
                ds->normalization().mean[c], ds->normalization().std[c]);
  }
  std::printf("first labels:");
  for (int64_t i = 0; i < std::min<int64_t>(5, ds->size()); ++i)
    std::printf(" %d (%s)", ds->label(i), ds->class_names()[ds->label(i)].c_str());
  std::printf("\nhorizontal flip augmentation: %s\n", ds->hflip_makes_sense() ? "on" : "off (digits)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return islkd::app::guarded_main("data_info", [&] { return run(argc, argv); });
}
