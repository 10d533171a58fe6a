// open_dataset: locates each official format's files under the user's directory, decodes the binary formats
// into memory, and attaches the dataset's class names and standard normalisation.
#include "data/dataset.h"

#include <cstring>
#include <filesystem>

#include "data/formats.h"
#include "kernels/common/checked.h"
#include "kernels/common/error.h"

namespace fs = std::filesystem;

namespace islkd::data {

const char* const kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

std::string known_normalizations() { return "cifar10, cifar100, svhn, cinic10, fashion-mnist, mnist, imagenet, half"; }

Normalization standard_normalization(const std::string& d) {
  // CIFAR-100 values are RepDistiller's (the KD benchmark this project mirrors); the others are the commonly
  // published per-channel statistics of each training set.
  if (d == "cifar10") return {d, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
  if (d == "cifar100") return {d, {0.5071f, 0.4867f, 0.4408f}, {0.2675f, 0.2565f, 0.2761f}};
  if (d == "svhn") return {d, {0.4377f, 0.4438f, 0.4728f}, {0.1980f, 0.2010f, 0.1970f}};
  if (d == "cinic10") return {d, {0.47889522f, 0.47227842f, 0.43047404f}, {0.24205776f, 0.23828046f, 0.25874835f}};
  if (d == "fashion-mnist") return {d, {0.2860f}, {0.3530f}};
  if (d == "mnist") return {d, {0.1307f}, {0.3081f}};
  // torchvision's ImageNet statistics: the transforms.Normalize of its classification reference recipe
  // (references/classification/presets.py) and of every ImageNet weight's transforms() (ImageClassification in
  // torchvision/transforms/_presets.py). Teachers converted from torchvision's ResNets expect their inputs so.
  if (d == "imagenet") return {d, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  if (d == "half") return {d, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
  ISLKD_FAIL("unknown normalisation '", d, "' (known: ", known_normalizations(), ")");
}

int32_t Dataset::label(int64_t i) const {
  check_index(i);
  return labels_[static_cast<size_t>(i)];
}

void Dataset::read_train_crop(int64_t i, uint8_t* out, uint64_t, int64_t) const { read(i, out); }

void Dataset::check_index(int64_t i) const {
  ISLKD_CHECK(i >= 0 && i < size(), source_, ": instance index ", i, " out of range (", size(), " instances)");
}

InMemoryDataset::InMemoryDataset(std::vector<uint8_t> pixels, std::vector<int32_t> labels, int c, int h, int w,
                                 Info info)
    : pixels_(std::move(pixels)) {
  c_ = c;
  h_ = h;
  w_ = w;
  labels_ = std::move(labels);
  class_names_ = std::move(info.class_names);
  norm_ = std::move(info.norm);
  hflip_ = info.hflip;
  source_ = std::move(info.source);
  ISLKD_CHECK(static_cast<int64_t>(pixels_.size()) ==
                  checked_mul(size(), instance_bytes(), source_, ": pixel bytes of all instances"),
              source_, ": ", pixels_.size(),
              " pixel bytes for ", size(), " instances of ", instance_bytes());
  ISLKD_CHECK(norm_.mean.size() == static_cast<size_t>(c) && norm_.std.size() == static_cast<size_t>(c), source_,
              ": normalisation '", norm_.name, "' is for ", norm_.mean.size(), "-channel images, these have ", c);
  for (int32_t l : labels_)
    ISLKD_CHECK(l >= 0 && l < num_classes(), source_, ": label ", l, " out of range for ", num_classes(), " classes");
}

const uint8_t* InMemoryDataset::pixels(int64_t i) const {
  check_index(i);
  return pixels_.data() + i * instance_bytes();
}

void InMemoryDataset::read(int64_t i, uint8_t* out) const {
  std::memcpy(out, pixels(i), static_cast<size_t>(instance_bytes()));
}

namespace {

const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};
const std::vector<std::string> kCifar100Fine = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm"};
const std::vector<std::string> kCifar100Coarse = {
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"};
const std::vector<std::string> kFashionNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const std::vector<std::string> kDigitNames = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

// The official archives unpack into a named folder; accept that folder or its parent.
fs::path locate(const fs::path& path, const std::string& archive_dir, const std::string& probe) {
  if (fs::exists(path / probe)) return path;
  if (fs::exists(path / archive_dir / probe)) return path / archive_dir;
  ISLKD_FAIL((path / probe).string(), ": not found (expected the '", archive_dir,
             "' folder of the official archive, or its parent)");
}

Normalization pick_norm(const DatasetOptions& o, const std::string& fallback) {
  return standard_normalization(o.normalization.empty() ? fallback : o.normalization);
}

std::shared_ptr<const Dataset> open_cifar(const fs::path& path, const std::string& split, bool hundred,
                                          const DatasetOptions& o) {
  std::vector<std::string> files;
  if (!hundred) {
    if (split == "train")
      for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
    else if (split == "test")
      files.push_back("test_batch.bin");
  } else if (split == "train" || split == "test") {
    files.push_back(split + ".bin");
  }
  ISLKD_CHECK(!files.empty(), "CIFAR has splits train and test, not '", split, "'");
  fs::path dir = locate(path, hundred ? "cifar-100-binary" : "cifar-10-batches-bin", files[0]);
  RawImages raw;
  for (const auto& f : files) {
    std::string file = (dir / f).string();
    std::vector<uint8_t> bytes = read_file_bytes(file);
    if (hundred)
      parse_cifar(bytes.data(), bytes.size(), file, 2, o.cifar100_coarse ? 0 : 1, o.cifar100_coarse ? 20 : 100, raw);
    else
      parse_cifar(bytes.data(), bytes.size(), file, 1, 0, 10, raw);
  }
  InMemoryDataset::Info info;
  info.class_names = hundred ? (o.cifar100_coarse ? kCifar100Coarse : kCifar100Fine) : kCifar10Names;
  info.norm = pick_norm(o, hundred ? "cifar100" : "cifar10");
  info.source = (dir / files[0]).string() + (files.size() > 1 ? " (+" + std::to_string(files.size() - 1) + ")" : "");
  return std::make_shared<InMemoryDataset>(std::move(raw.pixels), std::move(raw.labels), 3, 32, 32, std::move(info));
}

std::shared_ptr<const Dataset> open_svhn(const fs::path& path, const std::string& split, const DatasetOptions& o) {
  fs::path file = path;
  if (!fs::is_regular_file(path)) {
    ISLKD_CHECK(split == "train" || split == "test" || split == "extra", "SVHN has splits train, test and extra, not '",
                split, "'");
    file = path / (split + "_32x32.mat");
  }
  std::vector<uint8_t> bytes = read_file_bytes(file.string());
  RawImages raw = parse_svhn_mat(bytes.data(), bytes.size(), file.string());
  bytes = {};
  InMemoryDataset::Info info;
  info.class_names = kDigitNames;
  info.norm = pick_norm(o, "svhn");
  info.hflip = false;
  info.source = file.string();
  return std::make_shared<InMemoryDataset>(std::move(raw.pixels), std::move(raw.labels), raw.c, raw.h, raw.w,
                                           std::move(info));
}

std::string find_idx(const fs::path& dir, const std::string& stem) {
  for (const char* suffix : {"", ".gz"}) {
    fs::path p = dir / (stem + suffix);
    if (fs::exists(p)) return p.string();
  }
  ISLKD_FAIL((dir / stem).string(), "[.gz]: not found (an IDX dataset folder holds train-images-idx3-ubyte, ",
             "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz)");
}

std::shared_ptr<const Dataset> open_idx(const fs::path& path, const std::string& split, bool fashion,
                                        const DatasetOptions& o) {
  ISLKD_CHECK(split == "train" || split == "test", "IDX datasets have splits train and test, not '", split, "'");
  const std::string prefix = split == "train" ? "train" : "t10k";
  std::string img_file = find_idx(path, prefix + "-images-idx3-ubyte");
  std::string lab_file = find_idx(path, prefix + "-labels-idx1-ubyte");
  std::vector<uint8_t> img = read_file_bytes(img_file), lab = read_file_bytes(lab_file);
  RawImages raw = parse_idx(img.data(), img.size(), img_file, lab.data(), lab.size(), lab_file, 10);
  img = {};
  InMemoryDataset::Info info;
  info.class_names = fashion ? kFashionNames : kDigitNames;
  info.norm = pick_norm(o, fashion ? "fashion-mnist" : "mnist");
  info.hflip = fashion;
  info.source = img_file;
  return std::make_shared<InMemoryDataset>(std::move(raw.pixels), std::move(raw.labels), 1, raw.h, raw.w,
                                           std::move(info));
}

}  // namespace

std::shared_ptr<const Dataset> open_dataset(const std::string& format, const std::string& path,
                                            const std::string& split, const DatasetOptions& options) {
  ISLKD_CHECK(options.image_size == 0 || format == "imagefolder" || format == "cinic10", format,
              ": an image size (--image-size ", options.image_size,
              ") applies to ImageFolder datasets only; these images are read at their own size");
  if (format == "cifar10" || format == "cifar100") {
    ISLKD_CHECK(!path.empty(), format, ": give the dataset folder (--path)");
    return open_cifar(path, split, format == "cifar100", options);
  }
  if (format == "svhn") {
    ISLKD_CHECK(!path.empty(), "svhn: give the folder with train_32x32.mat / test_32x32.mat (--path)");
    return open_svhn(path, split, options);
  }
  if (format == "imagefolder" || format == "cinic10") {
    ISLKD_CHECK(!path.empty(), format, ": give the root folder (--path)");
    DatasetOptions o = options;
    if (o.normalization.empty() && format == "cinic10") o.normalization = "cinic10";
    return open_image_folder(path, split, o);
  }
  if (format == "fashion-mnist" || format == "mnist" || format == "idx") {
    std::string p = path.empty() && format == "fashion-mnist" ? kDefaultFashionMnistDir : path;
    ISLKD_CHECK(!p.empty(), format, ": give the folder with the IDX files (--path)");
    // Plain "idx" cannot tell clothes from digits by the bytes; the folder name can.
    bool fashion = format == "fashion-mnist" || (format == "idx" && p.find("fashion") != std::string::npos);
    return open_idx(p, split, fashion, options);
  }
  ISLKD_FAIL("unknown dataset format '", format,
             "' (known: cifar10, cifar100, svhn, imagefolder, cinic10, idx, mnist, fashion-mnist)");
}

}  // namespace islkd::data
