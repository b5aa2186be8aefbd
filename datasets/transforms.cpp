#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "datasets/random.h"

namespace razor::data {

namespace {

std::string shape_text(const cv::Mat& image) {
  return std::to_string(image.rows) + "x" + std::to_string(image.cols) + "x" +
         std::to_string(image.channels());
}

// `key = n` (square, or the scalar itself for Resize) or `key = [h, w]`.
struct SizeArg {
  Size2 size;
  bool scalar = false;
};

SizeArg read_size(Args& args, const std::string& key) {
  const Json& value = args.raw(key);
  SizeArg out;
  if (value.is_number_integer()) {
    const int n = value.get<int>();
    out.size = {n, n};
    out.scalar = true;
  } else if (value.is_array() && value.size() == 2 && value[0].is_number_integer() &&
             value[1].is_number_integer()) {
    out.size = {value[0].get<int>(), value[1].get<int>()};
  } else {
    args.fail(key, "expected an integer or [height, width], got " + value.dump());
  }
  if (out.size.height <= 0 || out.size.width <= 0) {
    args.fail(key, "sizes must be positive, got " + value.dump());
  }
  return out;
}

RandomCrop::Padding read_padding(Args& args) {
  RandomCrop::Padding p;
  if (!args.has("padding")) {
    args.accept("padding");
    return p;
  }
  const Json& value = args.raw("padding");
  std::vector<int> v;
  if (value.is_number_integer()) {
    v = {value.get<int>()};
  } else if (value.is_array()) {
    for (const auto& item : value) {
      if (!item.is_number_integer()) args.fail("padding", "expected integers, got " + value.dump());
      v.push_back(item.get<int>());
    }
  }
  if (v.size() == 1) {
    p = {v[0], v[0], v[0], v[0]};
  } else if (v.size() == 2) {
    p = {v[0], v[1], v[0], v[1]};
  } else if (v.size() == 4) {
    p = {v[0], v[1], v[2], v[3]};
  } else {
    args.fail(
        "padding",
        "expected n, [left/right, top/bottom] or [left, top, right, bottom], got " + value.dump());
  }
  if (std::min({p.left, p.top, p.right, p.bottom}) < 0) {
    args.fail("padding", "padding must be >= 0, got " + value.dump());
  }
  return p;
}

int read_interpolation(Args& args) {
  const std::string name = args.get("interpolation", "bilinear");
  if (name == "bilinear") return cv::INTER_LINEAR;
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "bicubic") return cv::INTER_CUBIC;
  if (name == "area") return cv::INTER_AREA;
  args.fail("interpolation",
            "expected \"bilinear\", \"nearest\", \"bicubic\" or \"area\", got \"" + name + "\"");
}

}  // namespace

void Compose::apply(cv::Mat& image, std::mt19937_64& rng) const {
  for (const auto& transform : transforms_) transform->apply(image, rng);
}

Resize::Resize(Size2 size, int shorter_side, int interpolation)
    : size_(size), shorter_side_(shorter_side), interpolation_(interpolation) {}

void Resize::apply(cv::Mat& image, std::mt19937_64&) const {
  int h = size_.height, w = size_.width;
  if (shorter_side_ > 0) {
    // torchvision: the shorter side becomes `shorter_side`, the longer one is truncated.
    if (image.rows <= image.cols) {
      h = shorter_side_;
      w = static_cast<int>(static_cast<int64_t>(shorter_side_) * image.cols / image.rows);
    } else {
      w = shorter_side_;
      h = static_cast<int>(static_cast<int64_t>(shorter_side_) * image.rows / image.cols);
    }
  }
  if (h == image.rows && w == image.cols) return;
  cv::Mat out;
  cv::resize(image, out, cv::Size(w, h), 0, 0, interpolation_);
  image = out;
}

RandomCrop::RandomCrop(Size2 size, Padding padding, double fill, bool pad_if_needed)
    : size_(size), padding_(padding), fill_(fill), pad_if_needed_(pad_if_needed) {}

void RandomCrop::apply(cv::Mat& image, std::mt19937_64& rng) const {
  Padding pad = padding_;
  if (pad_if_needed_) {
    // As torchvision: pad both sides by the missing amount.
    const int rows = image.rows + pad.top + pad.bottom, cols = image.cols + pad.left + pad.right;
    if (rows < size_.height) pad.top += size_.height - rows, pad.bottom += size_.height - rows;
    if (cols < size_.width) pad.left += size_.width - cols, pad.right += size_.width - cols;
  }
  cv::Mat padded = image;
  if (pad.left || pad.top || pad.right || pad.bottom) {
    cv::copyMakeBorder(image, padded, pad.top, pad.bottom, pad.left, pad.right, cv::BORDER_CONSTANT,
                       cv::Scalar::all(fill_));
  }
  if (padded.rows < size_.height || padded.cols < size_.width) {
    throw runtime_error("RandomCrop: crop size ", size_.height, "x", size_.width,
                        " is larger than the padded image ", shape_text(padded),
                        " (set pad_if_needed = true or a smaller size)");
  }
  const int y = static_cast<int>(uniform_index(rng, padded.rows - size_.height + 1));
  const int x = static_cast<int>(uniform_index(rng, padded.cols - size_.width + 1));
  image = padded(cv::Rect(x, y, size_.width, size_.height));
}

RandomFlip::RandomFlip(double prob, bool horizontal) : prob_(prob), horizontal_(horizontal) {}

void RandomFlip::apply(cv::Mat& image, std::mt19937_64& rng) const {
  if (uniform01(rng) >= prob_) return;
  cv::Mat out;
  cv::flip(image, out, horizontal_ ? 1 : 0);
  image = out;
}

CenterCrop::CenterCrop(Size2 size) : size_(size) {}

void CenterCrop::apply(cv::Mat& image, std::mt19937_64&) const {
  cv::Mat src = image;
  if (src.rows < size_.height || src.cols < size_.width) {
    const int dh = std::max(0, size_.height - src.rows), dw = std::max(0, size_.width - src.cols);
    cv::copyMakeBorder(image, src, dh / 2, (dh + 1) / 2, dw / 2, (dw + 1) / 2, cv::BORDER_CONSTANT,
                       cv::Scalar::all(0));
  }
  // Python's round (half to even), as torchvision computes the offsets.
  const int top = static_cast<int>(std::nearbyint((src.rows - size_.height) / 2.0));
  const int left = static_cast<int>(std::nearbyint((src.cols - size_.width) / 2.0));
  image = src(cv::Rect(left, top, size_.width, size_.height));
}

RandomResizedCrop::RandomResizedCrop(Size2 size, std::pair<double, double> scale,
                                     std::pair<double, double> ratio, int interpolation)
    : size_(size), scale_(scale), ratio_(ratio), interpolation_(interpolation) {}

void RandomResizedCrop::apply(cv::Mat& image, std::mt19937_64& rng) const {
  const int height = image.rows, width = image.cols;
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(ratio_.first), log_hi = std::log(ratio_.second);
  cv::Rect crop;
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target = area * (scale_.first + (scale_.second - scale_.first) * uniform01(rng));
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * uniform01(rng));
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target * aspect)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int y = static_cast<int>(uniform_index(rng, static_cast<uint64_t>(height - h + 1)));
      const int x = static_cast<int>(uniform_index(rng, static_cast<uint64_t>(width - w + 1)));
      crop = cv::Rect(x, y, w, h);
      found = true;
    }
  }
  if (!found) {
    // The central crop with the aspect ratio clamped into `ratio`.
    const double in_ratio = static_cast<double>(width) / height;
    int w = width, h = height;
    if (in_ratio < ratio_.first) {
      h = static_cast<int>(std::nearbyint(w / ratio_.first));
    } else if (in_ratio > ratio_.second) {
      w = static_cast<int>(std::nearbyint(h * ratio_.second));
    }
    crop = cv::Rect((width - w) / 2, (height - h) / 2, w, h);
  }
  cv::Mat out;
  cv::resize(image(crop), out, cv::Size(size_.width, size_.height), 0, 0, interpolation_);
  image = out;
}

ColorJitter::ColorJitter(double brightness, double contrast, double saturation, double hue)
    : brightness_(brightness), contrast_(contrast), saturation_(saturation), hue_(hue) {}

namespace {

cv::Mat greyscale(const cv::Mat& rgb) {
  cv::Mat grey;
  cv::cvtColor(rgb, grey, cv::COLOR_RGB2GRAY);  // 0.299 R + 0.587 G + 0.114 B
  return grey;
}

// factor * image + (1 - factor) * other, clamped to [0, 1].
void blend(cv::Mat& image, const cv::Mat& other, double factor) {
  cv::addWeighted(image, factor, other, 1.0 - factor, 0.0, image);
  cv::min(cv::max(image, 0.0), 1.0, image);
}

}  // namespace

void ColorJitter::apply(cv::Mat& image, std::mt19937_64& rng) const {
  // torchvision's order of draws: the permutation, then each enabled factor.
  int order[4] = {0, 1, 2, 3};
  for (int i = 3; i > 0; --i) {
    std::swap(order[i], order[uniform_index(rng, static_cast<uint64_t>(i + 1))]);
  }
  auto factor = [&](double v) {
    const double lo = std::max(0.0, 1.0 - v);
    return lo + (1.0 + v - lo) * uniform01(rng);
  };
  const double b = brightness_ > 0 ? factor(brightness_) : 1.0;
  const double c = contrast_ > 0 ? factor(contrast_) : 1.0;
  const double s = saturation_ > 0 ? factor(saturation_) : 1.0;
  const double h = hue_ > 0 ? -hue_ + 2.0 * hue_ * uniform01(rng) : 0.0;

  const bool is_uint8 = image.depth() == CV_8U;
  const int channels = image.channels();
  cv::Mat work;
  image.convertTo(work, CV_32F, is_uint8 ? 1.0 / 255.0 : 1.0);
  for (int op : order) {
    if (op == 0 && b != 1.0) {
      blend(work, cv::Mat::zeros(work.size(), work.type()), b);
    } else if (op == 1 && c != 1.0) {
      const double mean = cv::mean(channels == 3 ? greyscale(work) : work)[0];
      blend(work, cv::Mat(work.size(), work.type(), cv::Scalar::all(mean)), c);
    } else if (op == 2 && s != 1.0 && channels == 3) {
      cv::Mat grey;
      cv::cvtColor(greyscale(work), grey, cv::COLOR_GRAY2RGB);
      blend(work, grey, s);
    } else if (op == 3 && h != 0.0 && channels == 3) {
      cv::Mat hsv;
      cv::cvtColor(work, hsv, cv::COLOR_RGB2HSV);  // H in [0, 360)
      std::vector<cv::Mat> planes;
      cv::split(hsv, planes);
      planes[0].forEach<float>([&](float& hue, const int*) {
        hue = static_cast<float>(std::fmod(hue + h * 360.0 + 360.0, 360.0));
      });
      cv::merge(planes, hsv);
      cv::cvtColor(hsv, work, cv::COLOR_HSV2RGB);
    }
  }
  if (is_uint8) {
    work.convertTo(image, CV_8U, 255.0);  // rounds and saturates
  } else {
    image = work;
  }
}

Normalize::Normalize(std::vector<double> mean, std::vector<double> std)
    : mean_(std::move(mean)), std_(std::move(std)) {}

void Normalize::apply(cv::Mat& image, std::mt19937_64&) const {
  const int channels = image.channels();
  if (mean_.size() != 1 && static_cast<int>(mean_.size()) != channels) {
    throw runtime_error("Normalize: ", mean_.size(), " mean/std values for an image of ", channels,
                        " channels (", shape_text(image), ")");
  }
  const double scale = image.depth() == CV_8U ? 1.0 / 255.0 : 1.0;
  const bool uniform =
      mean_.size() == 1 ||
      (std::all_of(mean_.begin(), mean_.end(), [&](double m) { return m == mean_[0]; }) &&
       std::all_of(std_.begin(), std_.end(), [&](double s) { return s == std_[0]; }));
  cv::Mat out;
  if (uniform) {
    // One fused pass: x * scale / std - mean / std.
    image.convertTo(out, CV_32F, scale / std_[0], -mean_[0] / std_[0]);
  } else {
    std::vector<cv::Mat> planes;
    cv::split(image, planes);
    for (int c = 0; c < channels; ++c) {
      cv::Mat plane;
      planes[c].convertTo(plane, CV_32F, scale / std_[c], -mean_[c] / std_[c]);
      planes[c] = plane;
    }
    cv::merge(planes, out);
  }
  image = out;
}

Cutout::Cutout(Size2 shape, std::vector<double> pad_val, double prob)
    : shape_(shape), pad_val_(std::move(pad_val)), prob_(prob) {}

void Cutout::apply(cv::Mat& image, std::mt19937_64& rng) const {
  if (uniform01(rng) > prob_) return;  // mmcls: np.random.rand() > prob disables it
  const int channels = image.channels();
  if ((pad_val_.size() != 1 && static_cast<int>(pad_val_.size()) != channels) || channels > 4) {
    throw runtime_error("Cutout: ", pad_val_.size(), " pad_val values for an image of ", channels,
                        " channels (", shape_text(image), "): give one, or one per channel (<= 4)");
  }
  const double y0 = uniform01(rng) * image.rows;
  const double x0 = uniform01(rng) * image.cols;
  const int y1 = static_cast<int>(std::max(0.0, y0 - shape_.height / 2.0));
  const int x1 = static_cast<int>(std::max(0.0, x0 - shape_.width / 2.0));
  const int y2 = std::min(image.rows, y1 + shape_.height);
  const int x2 = std::min(image.cols, x1 + shape_.width);
  const double scale = image.depth() == CV_8U ? 1.0 : 1.0 / 255.0;
  cv::Scalar fill;
  for (int c = 0; c < channels; ++c) {
    fill[c] = pad_val_[pad_val_.size() == 1 ? 0 : static_cast<size_t>(c)] * scale;
  }
  cv::Mat out = image.clone();
  out(cv::Rect(x1, y1, x2 - x1, y2 - y1)).setTo(fill);
  image = out;
}

Registry<Transform>& transform_registry() {
  static Registry<Transform> registry("transforms");
  return registry;
}

std::shared_ptr<const Compose> build_pipeline(std::vector<Args>& tables,
                                              const BuildContext& context) {
  std::vector<std::shared_ptr<const Transform>> transforms;
  for (auto& table : tables) transforms.push_back(transform_registry().build(table, context));
  return std::make_shared<const Compose>(std::move(transforms));
}

void register_transforms() {
  auto& registry = transform_registry();
  registry.add("Resize", [](Args& args, const BuildContext&) {
    const SizeArg size = read_size(args, "size");
    return std::make_shared<Resize>(size.size, size.scalar ? size.size.height : 0,
                                    read_interpolation(args));
  });
  registry.add("RandomCrop", [](Args& args, const BuildContext&) {
    const Size2 size = read_size(args, "size").size;
    const RandomCrop::Padding padding = read_padding(args);
    const double fill = args.get<double>("fill", 0.0);
    return std::make_shared<RandomCrop>(size, padding, fill,
                                        args.get<bool>("pad_if_needed", false));
  });
  registry.add("RandomFlip", [](Args& args, const BuildContext&) {
    const double prob = args.get<double>("prob", 0.5);
    if (!(prob >= 0.0 && prob <= 1.0)) args.fail("prob", "expected a probability in [0, 1]");
    const std::string direction = args.get("direction", "horizontal");
    if (direction != "horizontal" && direction != "vertical") {
      args.fail("direction", "expected \"horizontal\" or \"vertical\", got \"" + direction + "\"");
    }
    return std::make_shared<RandomFlip>(prob, direction == "horizontal");
  });
  registry.add("RandomResizedCrop", [](Args& args, const BuildContext&) {
    const Size2 size = read_size(args, "size").size;
    const auto range = [&](const std::string& key, std::pair<double, double> fallback) {
      const auto v = args.get<std::vector<double>>(key, {fallback.first, fallback.second});
      if (v.size() != 2 || !(v[0] > 0.0) || !(v[0] <= v[1])) {
        args.fail(key, "expected [low, high] with 0 < low <= high");
      }
      return std::make_pair(v[0], v[1]);
    };
    const auto scale = range("scale", {0.08, 1.0});
    if (scale.second > 1.0) args.fail("scale", "area fractions must be <= 1");
    const auto ratio = range("ratio", {3.0 / 4.0, 4.0 / 3.0});
    return std::make_shared<RandomResizedCrop>(size, scale, ratio, read_interpolation(args));
  });
  registry.add("ColorJitter", [](Args& args, const BuildContext&) {
    const auto strength = [&](const std::string& key) {
      const double v = args.get<double>(key, 0.0);
      if (!(v >= 0.0)) args.fail(key, "expected a value >= 0");
      return v;
    };
    const double brightness = strength("brightness"), contrast = strength("contrast");
    const double saturation = strength("saturation"), hue = strength("hue");
    if (hue > 0.5) args.fail("hue", "expected a value in [0, 0.5]");
    return std::make_shared<ColorJitter>(brightness, contrast, saturation, hue);
  });
  registry.add("CenterCrop", [](Args& args, const BuildContext&) {
    return std::make_shared<CenterCrop>(read_size(args, "size").size);
  });
  registry.add("Normalize", [](Args& args, const BuildContext&) {
    auto mean = args.require<std::vector<double>>("mean");
    auto std = args.require<std::vector<double>>("std");
    if (mean.empty()) args.fail("mean", "expected at least one value");
    if (mean.size() != std.size()) {
      args.fail("std", "expected as many values as mean (" + std::to_string(mean.size()) +
                           "), got " + std::to_string(std.size()));
    }
    for (double s : std) {
      if (!(s > 0.0)) args.fail("std", "every std must be > 0");
    }
    return std::make_shared<Normalize>(std::move(mean), std::move(std));
  });
  registry.add("Cutout", [](Args& args, const BuildContext&) {
    const Size2 shape = read_size(args, "shape").size;
    std::vector<double> pad_val = {128.0};  // mmcls's default
    if (args.has("pad_val")) {
      const Json& value = args.raw("pad_val");
      if (value.is_number()) {
        pad_val = {value.get<double>()};
      } else {
        pad_val = args.require<std::vector<double>>("pad_val");
        if (pad_val.empty()) args.fail("pad_val", "expected a number or one per channel");
      }
    }
    const double prob = args.get<double>("prob", 0.5);  // mmcls's default
    if (!(prob >= 0.0 && prob <= 1.0)) args.fail("prob", "expected a probability in [0, 1]");
    return std::make_shared<Cutout>(shape, std::move(pad_val), prob);
  });
}

}  // namespace razor::data
