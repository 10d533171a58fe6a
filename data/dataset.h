// The dataset interface every reader implements (instances of uint8 CHW pixels + integer labels), each
// dataset's standard normalisation, and the factory that opens a dataset by format name.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace islkd::data {

// Per-channel mean/std of the pixel values scaled to 0..1, as published with each dataset (torchvision style).
struct Normalization {
  std::string name;  // which dataset the numbers belong to, e.g. "cifar10"
  std::vector<float> mean, std;
};
// By name: a dataset's own (cifar10, cifar100, svhn, cinic10, fashion-mnist, mnist), "imagenet" (torchvision's
// ImageNet models expect it) or "half" (0.5 / 0.5). An unknown name is an error listing the known ones.
Normalization standard_normalization(const std::string& name);
std::string known_normalizations();  // "cifar10, cifar100, ..., half": for messages and --help

class Dataset {
 public:
  virtual ~Dataset() = default;
  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  int num_classes() const { return static_cast<int>(class_names_.size()); }
  int channels() const { return c_; }
  int height() const { return h_; }
  int width() const { return w_; }
  int64_t instance_bytes() const { return static_cast<int64_t>(c_) * h_ * w_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  int32_t label(int64_t i) const;
  const std::vector<int32_t>& labels() const { return labels_; }
  // Writes instance i's pixels (channels x height x width uint8, CHW) to out. Safe to call from many threads.
  virtual void read(int64_t i, uint8_t* out) const = 0;
  // A dataset whose training instances are random crops of larger images (ImageFolder with an image size:
  // RandomResizedCrop) says so here. The training loader then reads through read_train_crop (the crop is a pure
  // function of seed, epoch and i) and the Transform's padded crop is off; evaluation reads through read.
  virtual bool has_train_crop() const { return false; }
  virtual void read_train_crop(int64_t i, uint8_t* out, uint64_t seed, int64_t epoch) const;
  const Normalization& normalization() const { return norm_; }
  // Horizontal flip as augmentation: on for natural images, off for digits (a flipped 2 is not a 2).
  bool hflip_makes_sense() const { return hflip_; }
  // Where the data came from (directory or files), for messages and the run log.
  const std::string& source() const { return source_; }

 protected:
  void check_index(int64_t i) const;
  int c_ = 0, h_ = 0, w_ = 0;
  std::vector<std::string> class_names_;
  std::vector<int32_t> labels_;
  Normalization norm_;
  bool hflip_ = true;
  std::string source_;
};

// The binary formats are decoded once into memory.
class InMemoryDataset : public Dataset {
 public:
  struct Info {
    std::vector<std::string> class_names;
    Normalization norm;
    bool hflip = true;
    std::string source;
  };
  InMemoryDataset(std::vector<uint8_t> pixels, std::vector<int32_t> labels, int c, int h, int w, Info info);
  void read(int64_t i, uint8_t* out) const override;
  const uint8_t* pixels(int64_t i) const;  // zero-copy access to instance i

 private:
  std::vector<uint8_t> pixels_;
};

struct DatasetOptions {
  bool cifar100_coarse = false;   // CIFAR-100: the 20 coarse labels instead of the 100 fine ones
  // Override the format's default (a name of standard_normalization); its channel count must be the images'.
  std::string normalization;
  // ImageFolder / CINIC-10: 0 = every image has the first image's size, read as is; S > 0 = images of any size,
  // read as S x S RGB: evaluation resizes the shorter side to round(S / 0.875) and takes the centre S x S,
  // training takes a RandomResizedCrop (data/crop_resize.h). Other formats refuse S > 0.
  int image_size = 0;
};

// format: cifar10 | cifar100 | svhn | imagefolder | cinic10 | idx | mnist | fashion-mnist
// path:   the directory the official archive unpacks to (for fashion-mnist, empty means the Debian package's
//         /usr/share/datasets/fashion-mnist). split: train | test (svhn: also extra; imagefolder: any subfolder,
//         cinic10: train | valid | test).
std::shared_ptr<const Dataset> open_dataset(const std::string& format, const std::string& path,
                                            const std::string& split, const DatasetOptions& options = {});

// ImageFolder (root/<split>/<class>/*.png|jpg|jpeg), decoded lazily with stb_image; classes sorted by name.
std::shared_ptr<const Dataset> open_image_folder(const std::string& root, const std::string& split,
                                                 const DatasetOptions& options = {});

// The image files of an ImageFolder / CINIC-10 dataset in instance order; empty for the other formats.
std::vector<std::string> image_folder_files(const Dataset& ds);

extern const char* const kDefaultFashionMnistDir;

}  // namespace islkd::data
