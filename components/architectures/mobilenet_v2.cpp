#include "components/architectures/mobilenet_v2.h"

#include <torch/torch.h>

#include <cmath>

#include "components/architectures/make_divisible.h"
#include "engine/error.h"

namespace razor {

InvertedResidual::InvertedResidual(int64_t in_channels, int64_t out_channels, int64_t stride,
                                   double expand_ratio, const std::string& activation)
    : nn::Module("InvertedResidual") {
  RAZOR_CHECK(stride == 1 || stride == 2, "InvertedResidual: stride must be 1 or 2, got ", stride);
  RAZOR_CHECK(expand_ratio > 0, "InvertedResidual: expand_ratio must be positive, got ",
              expand_ratio);
  const auto hidden =
      static_cast<int64_t>(std::round(static_cast<double>(in_channels) * expand_ratio));
  conv_ = register_module("conv", std::make_shared<nn::Sequential>());
  if (expand_ratio != 1.0) {
    conv_->push_back(std::make_shared<nn::ConvModule>(
        nn::ConvModuleOptions(in_channels, hidden, 1).with_activation(activation)));
  }
  conv_->push_back(std::make_shared<nn::ConvModule>(nn::ConvModuleOptions(hidden, hidden, 3)
                                                        .with_stride(stride)
                                                        .with_padding(1)
                                                        .with_groups(hidden)
                                                        .with_activation(activation)));
  conv_->push_back(std::make_shared<nn::ConvModule>(
      nn::ConvModuleOptions(hidden, out_channels, 1).with_activation("")));
  if (stride == 1 && in_channels == out_channels)
    add_ = register_module("add", std::make_shared<nn::Add>());
}

torch::Tensor InvertedResidual::forward(const torch::Tensor& input) {
  torch::Tensor out = (*conv_)(input);
  return add_ ? (*add_)({input, out}) : out;
}

const std::vector<std::array<int64_t, 4>>& MobileNetV2::arch_settings() {
  static const std::vector<std::array<int64_t, 4>> settings = {
      {1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2},  {6, 64, 4, 2},
      {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
  };
  return settings;
}

MobileNetV2::MobileNetV2(const MobileNetV2Options& options)
    : Backbone("MobileNetV2"), options_(options) {
  RAZOR_CHECK(options.widen_factor > 0, "MobileNetV2: widen_factor must be positive, got ",
              options.widen_factor);
  RAZOR_CHECK(options.in_channels > 0, "MobileNetV2: in_channels must be positive, got ",
              options.in_channels);
  RAZOR_CHECK(options.stem_stride == 1 || options.stem_stride == 2,
              "MobileNetV2: stem_stride must be 1 or 2, got ", options.stem_stride);
  int64_t channels = make_divisible(32 * options.widen_factor, 8);
  conv1_ = register_module("conv1", std::make_shared<nn::ConvModule>(
                                        nn::ConvModuleOptions(options.in_channels, channels, 3)
                                            .with_stride(options.stem_stride)
                                            .with_padding(1)
                                            .with_activation("ReLU6")));
  for (size_t i = 0; i < arch_settings().size(); ++i) {
    const auto& [expand_ratio, width, blocks, first_stride] = arch_settings()[i];
    const int64_t out = make_divisible(static_cast<double>(width) * options.widen_factor, 8);
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < blocks; ++b) {
      layer->push_back(std::make_shared<InvertedResidual>(channels, out, b == 0 ? first_stride : 1,
                                                          static_cast<double>(expand_ratio)));
      channels = out;
    }
    layers_.push_back(register_module("layer" + std::to_string(i + 1), layer));
  }
  // mmcls widens the last conv only for widen_factor > 1.
  out_channels_ =
      options.widen_factor > 1.0 ? static_cast<int64_t>(1280 * options.widen_factor) : 1280;
  conv2_ = register_module(
      "conv2", std::make_shared<nn::ConvModule>(
                   nn::ConvModuleOptions(channels, out_channels_, 1).with_activation("ReLU6")));
}

torch::Tensor MobileNetV2::forward(const torch::Tensor& input) {
  torch::Tensor x = (*conv1_)(input);
  for (const auto& layer : layers_) x = (*layer)(x);
  return (*conv2_)(x);
}

}  // namespace razor
