#pragma once
// Pooling ops (op modules so that the tracer, recorders and quantisers see them by name).
#include <cstdint>

#include "components/nn/module.h"

namespace razor::nn {

struct Pool2dOptions {
  explicit Pool2dOptions(int64_t kernel_size) : kernel_size(kernel_size) {}
  int64_t kernel_size;
  /// 0 means "same as kernel_size", as in PyTorch.
  int64_t stride = 0;
  int64_t padding = 0;
  bool ceil_mode = false;
  /// AvgPool2d only: count the zero padding in the average.
  bool count_include_pad = true;

  // clang-format off
  Pool2dOptions& with_stride(int64_t v) { stride = v; return *this; }
  Pool2dOptions& with_padding(int64_t v) { padding = v; return *this; }
  Pool2dOptions& with_ceil_mode(bool v) { ceil_mode = v; return *this; }
  Pool2dOptions& with_count_include_pad(bool v) { count_include_pad = v; return *this; }
  // clang-format on
};

class MaxPool2d : public Module {
 public:
  const OpDescription* description() const override;
  explicit MaxPool2d(const Pool2dOptions& options);
  const Pool2dOptions& options() const { return options_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  Pool2dOptions options_;
};

class AvgPool2d : public Module {
 public:
  const OpDescription* description() const override;
  explicit AvgPool2d(const Pool2dOptions& options);
  const Pool2dOptions& options() const { return options_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  Pool2dOptions options_;
};

/// Averages each channel to an `height` x `width` grid (1 x 1: global average pooling).
class AdaptiveAvgPool2d : public Module {
 public:
  const OpDescription* description() const override;
  explicit AdaptiveAvgPool2d(int64_t output_size = 1)
      : AdaptiveAvgPool2d(output_size, output_size) {}
  AdaptiveAvgPool2d(int64_t height, int64_t width);
  int64_t output_height() const { return height_; }
  int64_t output_width() const { return width_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t height_, width_;
};

}  // namespace razor::nn
