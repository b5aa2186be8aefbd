#include "components/architectures/searchable_mobilenet_v2.h"

#include <torch/torch.h>

#include <cmath>

#include "components/architectures/make_divisible.h"
#include "engine/error.h"

namespace razor {

MBBlock::MBBlock(int64_t in_channels, int64_t out_channels, int64_t stride, int64_t kernel_size,
                 double expand_ratio, const std::string& activation)
    : nn::Module("MBBlock") {
  RAZOR_CHECK(stride == 1 || stride == 2, "MBBlock: stride must be 1 or 2, got ", stride);
  RAZOR_CHECK(kernel_size % 2 == 1 && kernel_size > 0, "MBBlock: kernel_size must be odd, got ",
              kernel_size);
  RAZOR_CHECK(expand_ratio >= 1, "MBBlock: expand_ratio must be >= 1, got ", expand_ratio);
  const auto mid = static_cast<int64_t>(std::round(static_cast<double>(in_channels) * expand_ratio));
  if (expand_ratio != 1.0) {
    expand_conv_ = register_module("expand_conv", std::make_shared<nn::ConvModule>(
                                                      nn::ConvModuleOptions(in_channels, mid, 1)
                                                          .with_activation(activation)));
  }
  depthwise_conv_ = register_module(
      "depthwise_conv", std::make_shared<nn::ConvModule>(nn::ConvModuleOptions(mid, mid, kernel_size)
                                                             .with_stride(stride)
                                                             .with_padding(kernel_size / 2)
                                                             .with_groups(mid)
                                                             .with_activation(activation)));
  linear_conv_ = register_module("linear_conv", std::make_shared<nn::ConvModule>(
                                                    nn::ConvModuleOptions(mid, out_channels, 1)
                                                        .with_activation("")));
  if (stride == 1 && in_channels == out_channels) add_ = register_module("add", std::make_shared<nn::Add>());
}

torch::Tensor MBBlock::forward(const torch::Tensor& input) {
  torch::Tensor x = expand_conv_ ? (*expand_conv_)(input) : input;
  x = (*linear_conv_)((*depthwise_conv_)(x));
  return add_ ? (*add_)({input, x}) : x;
}

SearchableMobileNetV2::SearchableMobileNetV2(const SearchableMobileNetV2Options& options,
                                             const BlockFactory& blocks)
    : Backbone("SearchableMobileNetV2"), options_(options) {
  RAZOR_CHECK(!options.arch_setting.empty(), "SearchableMobileNetV2: arch_setting is empty");
  int64_t channels = make_divisible(static_cast<double>(options.first_channels) * options.widen_factor, 8);
  conv1_ = register_module("conv1", std::make_shared<nn::ConvModule>(
                                        nn::ConvModuleOptions(options.in_channels, channels, 3)
                                            .with_stride(options.stem_stride)
                                            .with_padding(1)
                                            .with_activation("ReLU6")));
  for (size_t stage = 0; stage < options.arch_setting.size(); ++stage) {
    const auto [width, num_blocks, first_stride] = options.arch_setting[stage];
    const int64_t out = make_divisible(static_cast<double>(width) * options.widen_factor, 8);
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < num_blocks; ++b) {
      layer->push_back(blocks(static_cast<int64_t>(stage), b, channels, out, b == 0 ? first_stride : 1));
      channels = out;
    }
    layers_.push_back(register_module("layer" + std::to_string(stage + 1), layer));
  }
  conv2_ = register_module("conv2", std::make_shared<nn::ConvModule>(
                                        nn::ConvModuleOptions(channels, options.last_channels, 1)
                                            .with_activation("ReLU6")));
}

std::vector<nn::Module*> SearchableMobileNetV2::sequential_stages() {
  std::vector<nn::Module*> stages = {conv1_.get()};
  for (const auto& layer : layers_) {
    for (const auto& block : *layer) stages.push_back(block.get());
  }
  stages.push_back(conv2_.get());
  return stages;
}

torch::Tensor SearchableMobileNetV2::forward(const torch::Tensor& input) {
  torch::Tensor x = (*conv1_)(input);
  for (const auto& layer : layers_) x = (*layer)(x);
  return (*conv2_)(x);
}

}  // namespace razor
