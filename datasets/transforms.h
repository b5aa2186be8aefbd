#pragma once
// Image transforms on OpenCV matrices (H x W x C, uint8 or float32), built from the
// `pipeline = [ {type = "RandomCrop", ...}, ... ]` array of a dataset table.
//
// Contract: `apply` replaces `image` with a new matrix; it never writes into the pixels it
// was given, because datasets hand out views of their in-memory arrays. Random transforms
// draw only from the `rng` they are given, which the loader seeds per sample from
// (run seed, epoch, sample index), so results do not depend on threads or scheduling.
//
// Pixel units: uint8 images are in [0, 255]; float images are in [0, 1] units (collation
// turns a uint8 image into floats by dividing by 255, the same convention).
#include <memory>
#include <opencv2/core.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/registry.h"

namespace razor::data {

class Transform {
 public:
  virtual ~Transform() = default;
  /// Transforms `image` in place (by assigning a new matrix to it).
  virtual void apply(cv::Mat& image, std::mt19937_64& rng) const = 0;
};

/// Several transforms applied in order.
class Compose : public Transform {
 public:
  explicit Compose(std::vector<std::shared_ptr<const Transform>> transforms)
      : transforms_(std::move(transforms)) {}
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;
  bool empty() const { return transforms_.empty(); }
  size_t size() const { return transforms_.size(); }

 private:
  std::vector<std::shared_ptr<const Transform>> transforms_;
};

/// An image size, rows first as in the configs ("size = [h, w]").
struct Size2 {
  int height = 0;
  int width = 0;
};

/// `size = 32` or `size = [h, w]`: resizes to [h, w]; an int resizes the shorter side to it
/// and keeps the aspect ratio (torchvision's Resize). `interpolation` = "bilinear" (default),
/// "nearest", "bicubic" or "area".
class Resize : public Transform {
 public:
  /// `shorter_side` > 0 selects the aspect-keeping mode and ignores `size`.
  Resize(Size2 size, int shorter_side, int interpolation);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  Size2 size_;
  int shorter_side_;
  int interpolation_;  // cv::InterpolationFlags
};

/// Pads by `padding` with the constant `fill`, then takes a random `size` crop (torchvision's
/// RandomCrop). `padding` = n, [left/right, top/bottom] or [left, top, right, bottom];
/// `pad_if_needed` pads images smaller than `size` up to it.
class RandomCrop : public Transform {
 public:
  struct Padding {
    int left = 0, top = 0, right = 0, bottom = 0;
  };
  RandomCrop(Size2 size, Padding padding, double fill, bool pad_if_needed);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  Size2 size_;
  Padding padding_;
  double fill_;
  bool pad_if_needed_;
};

/// Flips with probability `prob` (default 0.5); `direction` = "horizontal" (default) or
/// "vertical". One draw per image whether it flips or not.
class RandomFlip : public Transform {
 public:
  RandomFlip(double prob, bool horizontal);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  double prob_;
  bool horizontal_;
};

/// The central `size` crop; images smaller than it are zero-padded first (torchvision).
class CenterCrop : public Transform {
 public:
  explicit CenterCrop(Size2 size);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  Size2 size_;
};

/// (x - mean) / std per channel, on [0, 1] units: a uint8 image is divided by 255 first, a
/// float image is taken as already in [0, 1] units. Output is float32. `mean` and `std` have
/// one value per channel, or one value for all (Fashion-MNIST: mean 0.2860, std 0.3530).
class Normalize : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> std);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  std::vector<double> mean_;
  std::vector<double> std_;
};

/// A random area and aspect ratio crop resized to `size` (torchvision's RandomResizedCrop,
/// mmcls's with `scale` = size): up to 10 tries draw an area fraction uniformly from `scale`
/// (default [0.08, 1]) and a log-uniform aspect ratio from `ratio` (default [3/4, 4/3]); when
/// none fits, the central crop of the clamped ratio. `interpolation` as Resize.
class RandomResizedCrop : public Transform {
 public:
  RandomResizedCrop(Size2 size, std::pair<double, double> scale, std::pair<double, double> ratio,
                    int interpolation);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  Size2 size_;
  std::pair<double, double> scale_;
  std::pair<double, double> ratio_;
  int interpolation_;
};

/// Random brightness, contrast, saturation and hue changes in a random order (torchvision's
/// ColorJitter): a factor drawn uniformly from [max(0, 1 - v), 1 + v] blends the image with
/// black (brightness), its mean grey level (contrast) or its greyscale (saturation); hue
/// shifts by a uniform [-hue, hue] turn. Saturation and hue leave one-channel images alone.
/// uint8 images stay uint8 (saturated); float images in [0, 1] units are clamped to it.
class ColorJitter : public Transform {
 public:
  ColorJitter(double brightness, double contrast, double saturation, double hue);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  double brightness_, contrast_, saturation_, hue_;
};

/// mmcls's Cutout (mmcv.cutout; DeVries & Taylor): with probability `prob` (one draw per
/// image, as mmcls's random_disable), a `shape` square (or [h, w]) filled with `pad_val` (one
/// value, or one per channel; in uint8 pixel units, so 255 is white on float images too). As
/// mmcv: a centre (y0, x0) uniform in [0, h) x [0, w) (y drawn first), the top-left corner
/// y1 = floor(max(0, y0 - h_cut / 2)) (the same for x), the bottom-right min(h, y1 + h_cut):
/// the square is clipped at the bottom and right borders, and moved inside at the top and
/// left ones. Put it before Normalize, as mmcls's pipelines do (its normalisation comes later).
class Cutout : public Transform {
 public:
  Cutout(Size2 shape, std::vector<double> pad_val, double prob);
  void apply(cv::Mat& image, std::mt19937_64& rng) const override;

 private:
  Size2 shape_;
  std::vector<double> pad_val_;
  double prob_;
};

/// "transforms": Resize, RandomCrop, RandomResizedCrop, RandomFlip, CenterCrop, ColorJitter,
/// Normalize, Cutout.
Registry<Transform>& transform_registry();

/// Builds a pipeline from the tables of a `pipeline` array (each through the registry).
std::shared_ptr<const Compose> build_pipeline(std::vector<Args>& tables,
                                              const BuildContext& context = {});

/// Adds the built-in transforms to transform_registry() (called by register_datasets).
void register_transforms();

}  // namespace razor::data
