// ImageFolder / CINIC-10 reader: root/<split>/<class>/**/*.png|jpg|jpeg|bmp, classes sorted by name and files
// sorted by path (torchvision's order, so indices match a PyTorch run), decoded lazily with stb_image (in the
// loader's threads, which call read). With an image size, images of any size become S x S (data/crop_resize.h).
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "data/crop_resize.h"
#include "data/dataset.h"
#include "data/formats.h"
#include "kernels/common/error.h"

namespace fs = std::filesystem;

namespace islkd::data {
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

RgbImage decode_file(const std::string& file, int expect_w = 0, int expect_h = 0, int64_t index = -1) {
  std::vector<uint8_t> bytes = read_file_bytes(file, kMaxImageFileBytes);
  try {
    return decode_image_rgb(bytes.data(), bytes.size(), file, ImageLimits{}, expect_w, expect_h);
  } catch (const Error& e) {
    if (index < 0) throw;
    ISLKD_FAIL(e.what(), " (entry ", index, ")");
  }
}

class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(const fs::path& dir, const DatasetOptions& o) {
    source_ = dir.string();
    ISLKD_CHECK(fs::is_directory(dir), source_, ": not a directory (expected root/<split>/<class>/<images>)");
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory()) class_names_.push_back(e.path().filename().string());
    std::sort(class_names_.begin(), class_names_.end());
    ISLKD_CHECK(!class_names_.empty(), source_, ": no class folders");
    for (size_t c = 0; c < class_names_.size(); ++c) {
      std::vector<std::pair<std::string, std::string>> found;  // (folder, file name): torchvision's walk order
      fs::path cdir = dir / class_names_[c];
      for (const auto& e : fs::recursive_directory_iterator(cdir, fs::directory_options::follow_directory_symlink))
        if (e.is_regular_file() && is_image_file(e.path()))
          found.emplace_back(e.path().parent_path().string(), e.path().filename().string());
      ISLKD_CHECK(!found.empty(), cdir.string(), ": empty class folder (no .png/.jpg/.jpeg/.bmp images)");
      std::sort(found.begin(), found.end());
      for (auto& f : found) {
        files_.push_back((fs::path(f.first) / f.second).string());
        labels_.push_back(static_cast<int32_t>(c));
      }
    }
    image_size_ = o.image_size;
    ISLKD_CHECK(image_size_ >= 0 && image_size_ <= 4096, source_, ": image size ", image_size_,
                " is outside 1..4096 (0 = the images' own size)");
    c_ = 3;
    if (image_size_ > 0) {
      decode_file(files_[0], 0, 0, 0);  // a first probe, so a wrong folder fails at open
      h_ = w_ = image_size_;
    } else {
      // The first image fixes the size every other image must have (a batch is one dense tensor).
      RgbImage first = decode_file(files_[0]);
      h_ = first.h;
      w_ = first.w;
    }
    std::string norm = o.normalization;
    if (norm.empty()) {
      std::vector<std::string> cifar = {"airplane", "automobile", "bird",  "cat",  "deer",
                                        "dog",      "frog",       "horse", "ship", "truck"};
      norm = class_names_ == cifar ? "cinic10" : "half";
    }
    norm_ = standard_normalization(norm);
    ISLKD_CHECK(norm_.mean.size() == 3, source_, ": normalisation '", norm, "' is for ", norm_.mean.size(),
                "-channel images, these have 3 (read as RGB)");
    hflip_ = true;
  }

  void read(int64_t i, uint8_t* out) const override {
    check_index(i);
    const std::string& file = files_[static_cast<size_t>(i)];
    if (image_size_ > 0) {
      RgbImage d = decode_file(file, 0, 0, i);
      const ResizeAndWindow r = center_crop_after_resize(d.w, d.h, image_size_);
      resize_bilinear_pil(d.rgb.data(), d.w * 3, d.w, d.h, r.resized_w, r.resized_h, r.window, out);
      return;
    }
    RgbImage d = decode_file(file, w_, h_, i);
    const int64_t plane = static_cast<int64_t>(h_) * w_;
    for (int64_t p = 0; p < plane; ++p)
      for (int c = 0; c < 3; ++c) out[c * plane + p] = d.rgb[static_cast<size_t>(p * 3 + c)];
  }

  bool has_train_crop() const override { return image_size_ > 0; }

  void read_train_crop(int64_t i, uint8_t* out, uint64_t seed, int64_t epoch) const override {
    if (image_size_ == 0) return read(i, out);
    check_index(i);
    RgbImage d = decode_file(files_[static_cast<size_t>(i)], 0, 0, i);
    const CropBox b = random_resized_crop_box(d.w, d.h, seed, epoch, i);
    CropBox all;
    all.w = all.h = image_size_;
    resize_bilinear_pil(d.rgb.data() + (static_cast<size_t>(b.y) * d.w + b.x) * 3, d.w * 3, b.w, b.h, image_size_,
                        image_size_, all, out);
  }

  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<std::string> files_;
  int image_size_ = 0;
};

}  // namespace

std::vector<std::string> image_folder_files(const Dataset& ds) {
  const auto* f = dynamic_cast<const ImageFolderDataset*>(&ds);
  return f ? f->files() : std::vector<std::string>{};
}

std::shared_ptr<const Dataset> open_image_folder(const std::string& root, const std::string& split,
                                                 const DatasetOptions& options) {
  fs::path dir = split.empty() ? fs::path(root) : fs::path(root) / split;
  ISLKD_CHECK(fs::is_directory(dir), dir.string(), ": not a directory (ImageFolder layout is root/", split,
              "/<class>/<images>)");
  return std::make_shared<ImageFolderDataset>(dir, options);
}

}  // namespace islkd::data
