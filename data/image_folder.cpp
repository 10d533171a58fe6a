// ImageFolder / CINIC-10 reader: root/<split>/<class>/**/*.png|jpg|jpeg|bmp, classes sorted by name and files
// sorted by path (torchvision's order, so indices match a PyTorch run), decoded lazily with stb_image.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "data/dataset.h"
#include "data/formats.h"
#include "kernels/common/error.h"

#define STBI_NO_STDIO
#include <stb/stb_image.h>

namespace fs = std::filesystem;

namespace islkd::data {
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

struct Decoded {
  int w = 0, h = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> rgb{nullptr, stbi_image_free};
};

Decoded decode_rgb(const std::string& file) {
  std::vector<uint8_t> bytes = read_file_bytes(file);
  ISLKD_CHECK(bytes.size() <= static_cast<size_t>(INT32_MAX), file, ": image file too large");
  Decoded d;
  int n = 0;
  d.rgb.reset(stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &d.w, &d.h, &n, 3));
  ISLKD_CHECK(d.rgb, file, ": cannot decode image (", stbi_failure_reason() ? stbi_failure_reason() : "unknown",
              ")");
  return d;
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
    // The first image fixes the size every other image must have (a batch is one dense tensor).
    Decoded first = decode_rgb(files_[0]);
    c_ = 3;
    h_ = first.h;
    w_ = first.w;
    std::string norm = o.normalization;
    if (norm.empty()) {
      std::vector<std::string> cifar = {"airplane", "automobile", "bird",  "cat",  "deer",
                                        "dog",      "frog",       "horse", "ship", "truck"};
      norm = class_names_ == cifar ? "cinic10" : "half";
    }
    norm_ = standard_normalization(norm);
    ISLKD_CHECK(norm_.mean.size() == 3, source_, ": normalisation '", norm, "' is not for 3-channel images");
    hflip_ = true;
  }

  void read(int64_t i, uint8_t* out) const override {
    check_index(i);
    const std::string& file = files_[static_cast<size_t>(i)];
    Decoded d = decode_rgb(file);
    ISLKD_CHECK(d.w == w_ && d.h == h_, file, ": image is ", d.w, "x", d.h, ", the dataset's images are ", w_, "x",
                h_, " (entry ", i, ")");
    const int64_t plane = static_cast<int64_t>(h_) * w_;
    for (int64_t p = 0; p < plane; ++p)
      for (int c = 0; c < 3; ++c) out[c * plane + p] = d.rgb.get()[p * 3 + c];
  }

  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<std::string> files_;
};

}  // namespace

std::shared_ptr<const Dataset> open_image_folder(const std::string& root, const std::string& split,
                                                 const DatasetOptions& options) {
  fs::path dir = split.empty() ? fs::path(root) : fs::path(root) / split;
  ISLKD_CHECK(fs::is_directory(dir), dir.string(), ": not a directory (ImageFolder layout is root/", split,
              "/<class>/<images>)");
  return std::make_shared<ImageFolderDataset>(dir, options);
}

}  // namespace islkd::data
