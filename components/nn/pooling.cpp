#include "components/nn/pooling.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/error.h"

namespace razor::nn {

namespace {
Pool2dOptions checked(Pool2dOptions options, const char* what) {
  if (options.stride == 0) options.stride = options.kernel_size;
  RAZOR_CHECK(options.kernel_size > 0 && options.stride > 0, what,
              ": kernel_size and stride must be positive, got ", options.kernel_size, " and ",
              options.stride);
  // PyTorch's own rule: padding at most half the kernel.
  RAZOR_CHECK(options.padding >= 0 && 2 * options.padding <= options.kernel_size, what,
              ": padding must be in [0, kernel_size / 2], got ", options.padding);
  return options;
}
}  // namespace

MaxPool2d::MaxPool2d(const Pool2dOptions& options)
    : Module("MaxPool2d"), options_(checked(options, "MaxPool2d")) {}

torch::Tensor MaxPool2d::forward(const torch::Tensor& input) {
  return torch::max_pool2d(input, options_.kernel_size, options_.stride, options_.padding,
                           /*dilation=*/1, options_.ceil_mode);
}

void MaxPool2d::pretty_print(std::ostream& stream) const {
  stream << "MaxPool2d(kernel_size=" << options_.kernel_size << ", stride=" << options_.stride
         << ", padding=" << options_.padding << ")";
}

AvgPool2d::AvgPool2d(const Pool2dOptions& options)
    : Module("AvgPool2d"), options_(checked(options, "AvgPool2d")) {}

torch::Tensor AvgPool2d::forward(const torch::Tensor& input) {
  return torch::avg_pool2d(input, options_.kernel_size, options_.stride, options_.padding,
                           options_.ceil_mode, options_.count_include_pad);
}

void AvgPool2d::pretty_print(std::ostream& stream) const {
  stream << "AvgPool2d(kernel_size=" << options_.kernel_size << ", stride=" << options_.stride
         << ", padding=" << options_.padding << ")";
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t height, int64_t width)
    : Module("AdaptiveAvgPool2d"), height_(height), width_(width) {
  RAZOR_CHECK(height > 0 && width > 0, "AdaptiveAvgPool2d: output size must be positive, got ",
              height, " x ", width);
}

torch::Tensor AdaptiveAvgPool2d::forward(const torch::Tensor& input) {
  // The native kernel, not torch::adaptive_avg_pool2d: for a 1 x 1 output that one takes a
  // mean, whose backward hands a channels_last input a contiguous gradient, and every op
  // before it (ReLU, BN and conv backward) then runs its slow mixed-layout path.
  if (input.layout() == torch::kStrided && !input.is_quantized()) {
    return torch::_adaptive_avg_pool2d(input, {height_, width_});
  }
  return torch::adaptive_avg_pool2d(input, {height_, width_});
}

void AdaptiveAvgPool2d::pretty_print(std::ostream& stream) const {
  stream << "AdaptiveAvgPool2d(output_size=(" << height_ << ", " << width_ << "))";
}

}  // namespace razor::nn
