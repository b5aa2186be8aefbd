#pragma once
// MobileNetV2 with mmcls's layout and module names: conv1 (ConvModule: conv, bn, activate),
// layer1..layer7 (Sequential of InvertedResidual, whose `conv` is a Sequential of
// ConvModules), conv2 (ConvModule to 1280 channels).
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "components/architectures/backbone.h"
#include "components/nn/conv_module.h"
#include "components/nn/multi_input.h"
#include "components/nn/sequential.h"

namespace razor {

/// [expand 1x1 ConvModule (if expand_ratio != 1)] -> depthwise 3x3 ConvModule(stride) ->
/// linear 1x1 ConvModule (no activation), with a residual `add` when stride is 1 and the
/// width does not change.
class InvertedResidual : public nn::Module {
 public:
  InvertedResidual(int64_t in_channels, int64_t out_channels, int64_t stride, double expand_ratio,
                   const std::string& activation = "ReLU6");
  bool use_residual() const { return add_ != nullptr; }
  nn::Sequential& conv() const { return *conv_; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Sequential> conv_;
  std::shared_ptr<nn::Add> add_;
};

struct MobileNetV2Options {
  /// Multiplies every width (rounded to a multiple of 8); the last conv widens only if > 1.
  double widen_factor = 1.0;
  int64_t in_channels = 3;
  /// Stride of the first conv: 2 for ImageNet, 1 for small (28 or 32 pixel) inputs.
  int64_t stem_stride = 2;

  // clang-format off
  MobileNetV2Options& with_widen_factor(double v) { widen_factor = v; return *this; }
  MobileNetV2Options& with_in_channels(int64_t v) { in_channels = v; return *this; }
  MobileNetV2Options& with_stem_stride(int64_t v) { stem_stride = v; return *this; }
  // clang-format on
};

class MobileNetV2 : public Backbone {
 public:
  /// mmcls arch settings, one row per stage: expand ratio, channels, blocks, first stride.
  static const std::vector<std::array<int64_t, 4>>& arch_settings();

  explicit MobileNetV2(const MobileNetV2Options& options = {});
  const MobileNetV2Options& options() const { return options_; }
  int64_t out_channels() const override { return out_channels_; }
  /// Stage `index` (0-based): child "layer<index + 1>".
  nn::Sequential& layer(size_t index) const { return *layers_.at(index); }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  MobileNetV2Options options_;
  int64_t out_channels_ = 0;
  std::shared_ptr<nn::ConvModule> conv1_, conv2_;
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
};

}  // namespace razor
