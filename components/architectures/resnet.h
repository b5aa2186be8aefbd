#pragma once
// ResNets with mmcls's module names, so that mmcls/MMRazor configs (recorder sources,
// pruning and quantisation module paths) carry over: conv1, bn1, relu, [maxpool],
// layer1..layerN of blocks; a block has conv1, bn1, conv2, bn2, [conv3, bn3], relu,
// [downsample = Sequential(conv1x1, BN)] and `add` for the residual.
//
// Two layouts share the code: the ImageNet ResNet (depth 18/34/50/101/152, stem conv7x7/2 +
// maxpool, stages 64..512 x expansion) and the CIFAR ResNet of He et al. (depth 6n+2,
// stem conv3x3/1, three stages of n BasicBlocks with base, 2 base, 4 base channels).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "components/architectures/backbone.h"
#include "components/nn/activation.h"
#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "components/nn/multi_input.h"
#include "components/nn/pooling.h"
#include "components/nn/sequential.h"

namespace razor {

/// conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU. The one `relu` module is called twice
/// per forward (as in mmcls), so recorders on it see two calls.
class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride);

  /// The BN whose output joins the shortcut (zero-initialised for zero_init_residual).
  nn::BatchNorm2d& last_bn() const { return *bn2_; }
  /// Null when the shortcut is the identity.
  nn::Sequential* downsample() const { return downsample_.get(); }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<nn::ReLU> relu_;
  std::shared_ptr<nn::Sequential> downsample_;
  std::shared_ptr<nn::Add> add_;
};

/// conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1-BN, + shortcut, ReLU, with
/// mid = out / 4 channels ("pytorch" style: the stride is on the 3x3 conv). `relu` is
/// called three times per forward.
class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in_channels, int64_t out_channels, int64_t stride);

  nn::BatchNorm2d& last_bn() const { return *bn3_; }
  nn::Sequential* downsample() const { return downsample_.get(); }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<nn::BatchNorm2d> bn1_, bn2_, bn3_;
  std::shared_ptr<nn::ReLU> relu_;
  std::shared_ptr<nn::Sequential> downsample_;
  std::shared_ptr<nn::Add> add_;
};

struct ResNetOptions {
  /// ImageNet layout: depth in 18, 34, 50, 101, 152.
  static ResNetOptions imagenet(int64_t depth);
  /// CIFAR layout: depth = 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...).
  static ResNetOptions cifar(int64_t depth);

  int64_t depth = 18;
  bool cifar_layout = false;
  int64_t in_channels = 3;
  /// Channels of the stem conv (ImageNet layout; the CIFAR stem has base_channels).
  int64_t stem_channels = 64;
  /// Width of the first stage (before the block expansion); later stages double it.
  int64_t base_channels = 64;
  /// Zero the last BN of every block, so each block starts as the identity.
  bool zero_init_residual = false;

  // clang-format off
  ResNetOptions& with_in_channels(int64_t v) { in_channels = v; return *this; }
  ResNetOptions& with_stem_channels(int64_t v) { stem_channels = v; return *this; }
  ResNetOptions& with_base_channels(int64_t v) { base_channels = v; return *this; }
  ResNetOptions& with_zero_init_residual(bool v) { zero_init_residual = v; return *this; }
  // clang-format on
};

class ResNet : public Backbone {
 public:
  explicit ResNet(const ResNetOptions& options);

  /// The depths each layout accepts, for error messages.
  static std::vector<int64_t> imagenet_depths();
  static bool is_cifar_depth(int64_t depth);

  const ResNetOptions& options() const { return options_; }
  int64_t out_channels() const override { return out_channels_; }
  size_t num_stages() const { return layers_.size(); }
  /// Stage `index` (0-based): child "layer<index + 1>".
  nn::Sequential& layer(size_t index) const { return *layers_.at(index); }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  template <class Block>
  void make_stages(const std::vector<int64_t>& blocks, int64_t in_channels);

  ResNetOptions options_;
  int64_t out_channels_ = 0;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;
  std::shared_ptr<nn::ReLU> relu_;
  std::shared_ptr<nn::MaxPool2d> maxpool_;  // ImageNet layout only
  std::vector<std::shared_ptr<nn::Sequential>> layers_;
};

}  // namespace razor
