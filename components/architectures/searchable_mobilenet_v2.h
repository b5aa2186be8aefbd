#pragma once
// The ProxylessNAS-style MobileNetV2 search space (MMRazor's SearchableMobileNetV2 and
// MBBlock): a stem ConvModule "conv1", stages "layer1".."layerN" of searchable blocks (each
// an op mutable over MBBlocks of kernel 3/5/7 and expand ratio 3/6, plus an identity where
// the block keeps its stride and width), and the last 1x1 ConvModule "conv2".
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "components/architectures/backbone.h"
#include "components/nn/conv_module.h"
#include "components/nn/multi_input.h"
#include "components/nn/sequential.h"

namespace razor {

/// An inverted residual with a k x k depthwise conv (MMRazor's MBBlock): [expand_conv 1x1]
/// -> depthwise_conv k x k (stride) -> linear_conv 1x1 (no activation), plus the input when
/// the stride is 1 and the width is kept.
class MBBlock : public nn::Module {
 public:
  MBBlock(int64_t in_channels, int64_t out_channels, int64_t stride, int64_t kernel_size,
          double expand_ratio, const std::string& activation = "ReLU6");
  bool with_residual() const { return add_ != nullptr; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::ConvModule> expand_conv_, depthwise_conv_, linear_conv_;
  std::shared_ptr<nn::Add> add_;
};

struct SearchableMobileNetV2Options {
  /// (channels, blocks, first stride) per stage.
  std::vector<std::array<int64_t, 3>> arch_setting = {
      {16, 1, 1}, {24, 2, 2}, {32, 3, 2}, {64, 4, 2}, {96, 3, 1}, {160, 3, 2}, {320, 1, 1}};
  int64_t in_channels = 3;
  int64_t first_channels = 32;
  /// 2 for ImageNet; 1 for 28-pixel inputs.
  int64_t stem_stride = 2;
  int64_t last_channels = 1280;
  double widen_factor = 1.0;
};

class SearchableMobileNetV2 : public Backbone {
 public:
  /// (stage, block, in, out, stride) -> the block module.
  using BlockFactory = std::function<std::shared_ptr<nn::Module>(int64_t, int64_t, int64_t,
                                                                 int64_t, int64_t)>;
  SearchableMobileNetV2(const SearchableMobileNetV2Options& options, const BlockFactory& blocks);
  int64_t out_channels() const override { return options_.last_channels; }
  /// conv1, every block of every stage, then conv2.
  std::vector<nn::Module*> sequential_stages() override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  SearchableMobileNetV2Options options_;
  std::shared_ptr<nn::ConvModule> conv1_, conv2_;
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
};

}  // namespace razor
