// infer: runs a trained model for deployment. The model, its classes and input channels come from the checkpoint
// (flags override); inputs are .npy batches or images (PNG/JPEG/BMP files or folders), and it prints each input's
// top-k classes; or it evaluates a dataset split (top-1, top-5, per class, confusion matrix). The PyTorch parity
// tests check our weights through it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/app_main.h"
#include "data/crop_resize.h"
#include "data/dataset.h"
#include "data/formats.h"
#include "data/transforms.h"
#include "engine/atomic_file.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/npy.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "engine/train/run_log.h"
#include "kernels/common/checked.h"
#include "kernels/cuda/cuda_kernels.h"
#include "models/registry.h"

namespace {

using namespace islkd;
namespace fs = std::filesystem;

struct Options {
  std::string model, weights, output, json, device = "auto";
  std::vector<std::string> inputs;
  int64_t num_classes = 0, in_channels = 0, batch = 256, top_k = 5, limit = 0;
  std::string dataset, data_path, split, normalization;
  int image_size = -1;  // -1 = the checkpoint's (train/train_kd --image-size), 0 = images as stored
};

// What the checkpoint says about the model and its data; each field may be absent (a converted PyTorch file).
struct Recorded {
  std::string model, dataset;
  int64_t num_classes = 0, in_channels = 0;
  int image_size = 0;  // the run's --image-size (absent = 0: images as stored)
  std::string normalization_flag;  // the run's --normalization (absent: the dataset format's own)
  std::vector<std::string> class_names;
  bool has_normalization = false;
  data::Normalization normalization;
};

Recorded read_recorded(const safetensors::File& f) {
  Recorded r;
  auto json_of = [&](const char* key) {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end()) return nlohmann::json();
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    return j.is_object() ? j : nlohmann::json();
  };
  const nlohmann::json config = json_of("config"), data = json_of("data");
  if (config.is_object()) {
    if (config.contains("model") && config["model"].is_string()) r.model = config["model"];
    if (config.contains("dataset") && config["dataset"].is_string()) r.dataset = config["dataset"];
    if (config.contains("num_classes") && config["num_classes"].is_number_integer()) r.num_classes = config["num_classes"];
    if (config.contains("in_channels") && config["in_channels"].is_number_integer()) r.in_channels = config["in_channels"];
    if (config.contains("image_size") && config["image_size"].is_number_integer()) r.image_size = config["image_size"];
    if (config.contains("normalization") && config["normalization"].is_string())
      r.normalization_flag = config["normalization"];
  }
  if (data.is_object()) {
    if (data.contains("class_names") && data["class_names"].is_array())
      for (const auto& n : data["class_names"])
        if (n.is_string()) r.class_names.push_back(n);
    const nlohmann::json& n = data.value("normalization", nlohmann::json());
    if (n.is_object() && n.contains("mean") && n.contains("std") && n["mean"].is_array() && n["std"].is_array()) {
      r.normalization.name = n.value("name", std::string("recorded"));
      for (const auto& v : n["mean"]) r.normalization.mean.push_back(v.get<float>());
      for (const auto& v : n["std"]) r.normalization.std.push_back(v.get<float>());
      r.has_normalization = true;
    }
  }
  // A file without a config (a PyTorch export): the shapes from the weights, its first convolution and its last
  // linear layer (the classifier comes last in every zoo model's state dict).
  for (const auto& e : f.entries) {
    if (checkpoint::is_extra_name(e.name) || e.dtype != safetensors::DType::F32) continue;
    if (r.in_channels == 0 && e.shape.size() == 4) r.in_channels = e.shape[1];
  }
  if (r.num_classes == 0)
    for (auto it = f.entries.rbegin(); it != f.entries.rend(); ++it)
      if (!checkpoint::is_extra_name(it->name) && it->dtype == safetensors::DType::F32 && it->shape.size() == 2) {
        r.num_classes = it->shape[0];
        break;
      }
  return r;
}

bool is_image_path(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

// One input row: where it came from, and (images) its normalised C x H x W pixels.
struct Item {
  std::string source;
  std::vector<int64_t> shape;  // C, H, W
  std::vector<float> pixels;
};

// Decodes an image file and normalises it as training did: RGB, or luma for a 1-channel model (ITU-R 601 weights
// in integers, so a grey PNG keeps its exact values), through the same Transform as the evaluation loader. With an
// image size, the image is first resized and centre-cropped as ImageFolder's evaluation reads it.
Item load_image(const std::string& path, int64_t channels, const data::Normalization& norm, int image_size) {
  ISLKD_CHECK(channels == 1 || channels == 3, path, ": images feed 1- or 3-channel models; this one has ", channels,
              " input channels (give a .npy batch)");
  std::vector<uint8_t> bytes = data::read_file_bytes(path, kMaxImageFileBytes);
  data::RgbImage img = data::decode_image_rgb(bytes.data(), bytes.size(), path);
  if (image_size > 0) {
    const data::ResizeAndWindow r = data::center_crop_after_resize(img.w, img.h, image_size);
    std::vector<uint8_t> chw(static_cast<size_t>(3) * image_size * image_size);
    data::resize_bilinear_pil(img.rgb.data(), img.w * 3, img.w, img.h, r.resized_w, r.resized_h, r.window,
                              chw.data());
    const int64_t plane = static_cast<int64_t>(image_size) * image_size;
    img.w = img.h = image_size;
    img.rgb.resize(static_cast<size_t>(plane * 3));
    for (int64_t p = 0; p < plane; ++p)
      for (int c = 0; c < 3; ++c) img.rgb[static_cast<size_t>(p * 3 + c)] = chw[static_cast<size_t>(c * plane + p)];
  }
  const int64_t plane = static_cast<int64_t>(img.h) * img.w;
  std::vector<uint8_t> chw(static_cast<size_t>(plane * channels));
  for (int64_t p = 0; p < plane; ++p) {
    const uint8_t* px = img.rgb.data() + p * 3;
    if (channels == 1)
      chw[static_cast<size_t>(p)] = static_cast<uint8_t>((299 * px[0] + 587 * px[1] + 114 * px[2] + 500) / 1000);
    else
      for (int c = 0; c < 3; ++c) chw[static_cast<size_t>(c * plane + p)] = px[c];
  }
  data::TransformConfig tc;
  tc.mean = norm.mean;
  tc.std = norm.std;
  ISLKD_CHECK(static_cast<int64_t>(tc.mean.size()) == channels, path, ": the normalisation '", norm.name, "' has ",
              tc.mean.size(), " channels, the model ", channels);
  data::Transform t(tc, static_cast<int>(channels), img.h, img.w);
  Item it{path, {channels, img.h, img.w}, std::vector<float>(chw.size())};
  t.apply(chw.data(), it.pixels.data(), data::AugmentChoice{});
  return it;
}

// Runs the model over items in chunks of consecutive same-shaped rows; returns N x K logits.
std::vector<float> forward_items(Module& model, const std::vector<Item>& items, int64_t k, int64_t batch,
                                 Device device) {
  NoGradGuard no_grad;
  std::vector<float> logits;
  logits.reserve(static_cast<size_t>(checked_mul(static_cast<int64_t>(items.size()), k, "logits (inputs x classes)")));
  for (size_t start = 0; start < items.size();) {
    size_t end = start;
    while (end < items.size() && static_cast<int64_t>(end - start) < batch && items[end].shape == items[start].shape)
      ++end;
    const std::vector<int64_t>& s = items[start].shape;
    std::vector<float> chunk;
    chunk.reserve(static_cast<size_t>((end - start) * items[start].pixels.size()));
    for (size_t i = start; i < end; ++i) chunk.insert(chunk.end(), items[i].pixels.begin(), items[i].pixels.end());
    Tensor in = Tensor::from_vector(chunk, {static_cast<int64_t>(end - start), s[0], s[1], s[2]}).to(device);
    Tensor y = model.forward(in);
    ISLKD_CHECK(y.dim() == 2 && y.size(0) == static_cast<int64_t>(end - start) && y.size(1) == k, "the model returned ",
                shape_str(y.shape()), ", expected ", end - start, " x ", k);
    std::vector<float> v = y.to_vector();
    logits.insert(logits.end(), v.begin(), v.end());
    start = end;
  }
  return logits;
}

int image_size_of(const Options& o, const Recorded& rec) { return o.image_size >= 0 ? o.image_size : rec.image_size; }

std::vector<Item> gather_inputs(const Options& o, int64_t channels, const Recorded& rec, std::string* norm_used) {
  std::vector<Item> items;
  auto normalization = [&]() -> data::Normalization {
    if (!o.normalization.empty()) return data::standard_normalization(o.normalization);
    if (rec.has_normalization) return rec.normalization;
    ISLKD_CHECK(!rec.dataset.empty(), o.weights, ": records no dataset, so images cannot be normalised as its "
                "training data was; give --normalization (", data::known_normalizations(), ")");
    return data::standard_normalization(rec.dataset);
  };
  for (const std::string& in : o.inputs) {
    fs::path p(in);
    if (p.extension() == ".npy") {
      const npy::Array x = npy::read(in);
      ISLKD_CHECK(x.shape.size() == 4, in, ": expected an N x C x H x W float32 array, got ", shape_str(x.shape));
      ISLKD_CHECK(x.shape[1] == channels, in, ": the batch has ", x.shape[1], " channels but the model takes ",
                  channels, " (--in-channels)");
      const int64_t per = checked_mul(checked_mul(x.shape[1], x.shape[2], in, ": image size"), x.shape[3], in,
                                      ": image size");
      for (int64_t i = 0; i < x.shape[0]; ++i)
        items.push_back({in + "[" + std::to_string(i) + "]", {x.shape[1], x.shape[2], x.shape[3]},
                         std::vector<float>(x.data.begin() + i * per, x.data.begin() + (i + 1) * per)});
      continue;
    }
    std::vector<std::string> files;
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p, ec))
        if (e.is_regular_file() && is_image_path(e.path())) files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      ISLKD_CHECK(!files.empty(), in, ": no .png/.jpg/.jpeg/.bmp images in this folder");
    } else {
      ISLKD_CHECK(is_image_path(p), in, ": not a .npy batch, an image (.png/.jpg/.jpeg/.bmp) or a folder of images");
      files.push_back(in);
    }
    const data::Normalization norm = normalization();
    ISLKD_CHECK(norm.mean.size() == static_cast<size_t>(channels) && norm.std.size() == norm.mean.size(),
                "normalisation '", norm.name, "' is for ", norm.mean.size(), "-channel images, the model takes ",
                channels);
    *norm_used = norm.name;
    for (const auto& f : files) items.push_back(load_image(f, channels, norm, image_size_of(o, rec)));
  }
  return items;
}

std::string class_label(const Recorded& rec, int64_t c) {
  return c < static_cast<int64_t>(rec.class_names.size()) ? rec.class_names[static_cast<size_t>(c)]
                                                          : "class " + std::to_string(c);
}

// Classes sorted by logit, best first (ties: the lower index first, as argmax).
std::vector<int64_t> ranking(const float* row, int64_t k) {
  std::vector<int64_t> idx(static_cast<size_t>(k));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
  return idx;
}

std::vector<double> softmax_row(const float* row, int64_t k) {
  const double m = *std::max_element(row, row + k);
  std::vector<double> p(static_cast<size_t>(k));
  double sum = 0;
  for (int64_t c = 0; c < k; ++c) sum += p[static_cast<size_t>(c)] = std::exp(static_cast<double>(row[c]) - m);
  for (auto& v : p) v /= sum;
  return p;
}

int classify(const Options& o, Module& model, const Recorded& rec, int64_t k, int64_t channels, Device device) {
  std::string norm_used;
  const std::vector<Item> items = gather_inputs(o, channels, rec, &norm_used);
  const std::vector<float> logits = forward_items(model, items, k, o.batch, device);
  const int64_t n = static_cast<int64_t>(items.size());
  if (!o.output.empty()) npy::write(o.output, {n, k}, logits);
  const int64_t top = std::min(o.top_k, k);
  nlohmann::json predictions = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * k;
    const std::vector<double> p = softmax_row(row, k);
    const std::vector<int64_t> order = ranking(row, k);
    std::string line = items[static_cast<size_t>(i)].source + ":";
    nlohmann::json tops = nlohmann::json::array();
    for (int64_t j = 0; j < top; ++j) {
      const int64_t c = order[static_cast<size_t>(j)];
      char buf[64];
      std::snprintf(buf, sizeof buf, " %.4f", p[static_cast<size_t>(c)]);
      line += (j ? "," : "") + std::string(" ") + std::to_string(c) + " " + class_label(rec, c) + buf;
      tops.push_back({{"class", c}, {"name", class_label(rec, c)}, {"probability", p[static_cast<size_t>(c)]}});
    }
    std::printf("%s\n", app::printable(line).c_str());
    predictions.push_back({{"input", items[static_cast<size_t>(i)].source}, {"top", tops}});
  }
  if (!o.json.empty()) {
    const std::string text = nlohmann::json{{"weights", o.weights}, {"model", o.model}, {"predictions", predictions}}
                                 .dump() + "\n";
    write_file_atomic(o.json, text.data(), text.size());
  }
  std::fprintf(stderr, "infer: %s on %s, %lld inputs%s%s%s\n", o.model.c_str(), device_name(device),
               static_cast<long long>(n), norm_used.empty() ? "" : (", images normalised as " + norm_used).c_str(),
               o.output.empty() ? "" : " -> ", o.output.c_str());
  return 0;
}

// A split of a dataset, read as training's evaluation reads it (first --limit instances, normalisation only).
int evaluate_split(const Options& o, Module& model, const Recorded& rec, int64_t k, int64_t channels, Device device) {
  const std::string dataset = !o.dataset.empty() ? o.dataset : rec.dataset;
  ISLKD_CHECK(!dataset.empty(), o.weights, ": records no dataset; give --dataset");
  const std::string split = o.split.empty() ? "test" : o.split;
  data::DatasetOptions dopt;
  dopt.image_size = image_size_of(o, rec);
  // As training read it: the run's --normalization when it gave one (a run without one used the format's own).
  dopt.normalization = !o.normalization.empty() ? o.normalization : rec.normalization_flag;
  auto ds = data::open_dataset(dataset, o.data_path, split, dopt);
  ISLKD_CHECK(ds->channels() == channels, ds->source(), ": ", ds->channels(), "-channel images, the model takes ",
              channels);
  ISLKD_CHECK(ds->num_classes() == k, ds->source(), ": ", ds->num_classes(), " classes, the model has ", k);
  const int64_t n = o.limit > 0 ? std::min(o.limit, ds->size()) : ds->size();
  ISLKD_CHECK(n > 0, ds->source(), ": the split is empty");
  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.device = device;
  data::Loader loader = train::sequential_loader(ds, n, lo);
  NoGradGuard no_grad;
  std::vector<std::vector<int64_t>> confusion(static_cast<size_t>(k), std::vector<int64_t>(static_cast<size_t>(k), 0));
  int64_t top1 = 0, top5 = 0, seen = 0;
  double loss_sum = 0;
  const int64_t five = std::min<int64_t>(5, k);
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    if (device == Device::CUDA) device::wait_prefetch();
    Tensor y = model(b.images);
    const int64_t rows = y.size(0);
    loss_sum += static_cast<double>(ops::cross_entropy(y, b.labels).item()) * static_cast<double>(rows);
    const std::vector<float> v = y.to_vector();
    const std::vector<int32_t> labels = b.labels.to_labels();
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = v.data() + r * k;
      const std::vector<int64_t> order = ranking(row, k);
      const int64_t label = labels[static_cast<size_t>(r)];
      ++confusion[static_cast<size_t>(label)][static_cast<size_t>(order[0])];
      top1 += order[0] == label;
      top5 += std::find(order.begin(), order.begin() + five, label) != order.begin() + five;
    }
    seen += rows;
  }
  auto pct = [](int64_t a, int64_t b) { return b > 0 ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  nlohmann::json per_class = nlohmann::json::array();
  for (int64_t c = 0; c < k; ++c) {
    const auto& row = confusion[static_cast<size_t>(c)];
    const int64_t total = std::accumulate(row.begin(), row.end(), int64_t{0});
    per_class.push_back({{"class", c}, {"name", c < ds->num_classes() ? ds->class_names()[static_cast<size_t>(c)] :
                                                     class_label(rec, c)},
                         {"n", total}, {"accuracy", pct(row[static_cast<size_t>(c)], total)}});
  }
  std::printf("infer: %s %s, %lld images: top-1 %.2f%%, top-%lld %.2f%%, loss %.4f\n", dataset.c_str(), split.c_str(),
              static_cast<long long>(seen), pct(top1, seen), static_cast<long long>(five), pct(top5, seen),
              loss_sum / static_cast<double>(seen));
  if (!o.json.empty()) {
    nlohmann::json j = {{"weights", o.weights}, {"model", o.model}, {"dataset", dataset}, {"split", split},
                        {"source", ds->source()}, {"n", seen}, {"top1_accuracy", pct(top1, seen)},
                        {"top5_accuracy", pct(top5, seen)}, {"loss", loss_sum / static_cast<double>(seen)},
                        {"per_class", per_class}, {"confusion", confusion},
                        {"confusion_axes", "rows: true class, columns: predicted class"}};
    const std::string text = j.dump() + "\n";
    write_file_atomic(o.json, text.data(), text.size());
  }
  return 0;
}

int run(Options o) {
  if (!o.output.empty()) check_output_path(o.output);  // bad outputs fail before the model runs
  if (!o.json.empty()) check_output_path(o.json);
  const bool eval_mode = !o.dataset.empty() || !o.split.empty() || !o.data_path.empty();
  ISLKD_CHECK(eval_mode != !o.inputs.empty(), eval_mode ? "give --input or --dataset/--split, not both"
                                                        : "nothing to do: give --input (.npy, images, a folder) or "
                                                          "--dataset/--split to evaluate a split");
  std::ostringstream device_log;  // the summary line names the device; stderr stays for errors
  const Device device = select_device(o.device, device_log);
  const safetensors::File file = safetensors::load(o.weights);
  if (!o.normalization.empty()) data::standard_normalization(o.normalization);  // a bad name fails first
  const Recorded rec = read_recorded(file);
  if (o.model.empty()) o.model = rec.model;
  ISLKD_CHECK(!o.model.empty(), o.weights, ": records no model (a converted PyTorch file?); give --model");
  const int64_t k = o.num_classes > 0 ? o.num_classes : rec.num_classes > 0 ? rec.num_classes : 100;
  const int64_t channels = o.in_channels > 0 ? o.in_channels : rec.in_channels > 0 ? rec.in_channels : 3;
  auto model = [&] {
    try {
      return models::create_model(o.model, {k, channels, 0});
    } catch (const Error& e) {  // e.g. a --num-classes whose classifier size overflows
      ISLKD_FAIL("--model ", o.model, " with --num-classes ", k, " and --in-channels ", channels, ": ", e.what());
    }
  }();
  checkpoint::load_from(file, *model, true, o.weights);  // strict: another architecture fails, naming the tensor
  model->eval();
  model->to(device);
  return eval_mode ? evaluate_split(o, *model, rec, k, channels, device)
                   : classify(o, *model, rec, k, channels, device);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Classify .npy batches or images with a trained model (top-k classes), or evaluate a dataset split"};
  app.add_option("--weights", o.weights, "checkpoint or weights (.safetensors from train, train_kd or "
                 "pth_to_safetensors.py)")->required();
  app.add_option("--input", o.inputs, "inputs: float32 N x C x H x W .npy (already normalised), PNG/JPEG/BMP images "
                 "or folders of them (normalised as the checkpoint's training data); repeatable");
  app.add_option("--model", o.model, "model name (default: the checkpoint's)");
  app.add_option("--num-classes", o.num_classes, "number of classes K (default: the checkpoint's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--in-channels", o.in_channels, "input channels C (default: the checkpoint's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--output", o.output, "write the N x K logits as float32 .npy");
  app.add_option("--top-k", o.top_k, "classes printed per input, with their probabilities")->check(CLI::PositiveNumber);
  app.add_option("--normalization", o.normalization,
                 "images and splits: normalise with this mean/std (" + data::known_normalizations() +
                     "; default: as the checkpoint's training data)");
  app.add_option("--dataset", o.dataset, "evaluate a split of this dataset (default: the checkpoint's)");
  app.add_option("--data-path", o.data_path, "the dataset's folder (as in train)");
  app.add_option("--split", o.split, "the split to evaluate (default test)");
  app.add_option("--image-size", o.image_size,
                 "images and ImageFolder splits: resize the shorter side to round(S/0.875) and take the centre S x S "
                 "(default: the checkpoint's --image-size; 0 = as stored)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--limit", o.limit, "evaluate the first N instances only")->check(CLI::PositiveNumber);
  app.add_option("--json", o.json, "write the predictions, or the split's evaluation (top-1, top-5, per class, "
                 "confusion matrix), as JSON");
  app.add_option("--device", o.device, "auto (cuda when available) | cpu | cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--batch", o.batch, "images per forward pass (bounds memory)")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the one-line usage error
    return code == 0 ? 0 : 1;
  }
  return islkd::app::guarded_main("infer", [&] { return run(o); });
}
