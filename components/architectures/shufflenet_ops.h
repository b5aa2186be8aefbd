#pragma once
// The candidate blocks of the SPOS ShuffleNetV2 search space (MMRazor's ShuffleBlock and
// ShuffleXception, with its child names): half the channels pass through (stride 1) or a
// projection branch (stride 2), the other half through the main branch; the two halves
// are concatenated and channel-shuffled.
#include <cstdint>
#include <memory>

#include "components/nn/channel_ops.h"
#include "components/nn/multi_input.h"
#include "components/nn/sequential.h"

namespace razor {

using nn::shuffle_channels;

/// Main branch: 1x1 conv-BN-ReLU, k x k depthwise conv-BN (stride), 1x1 conv-BN-ReLU.
class ShuffleBlock : public nn::Module {
 public:
  ShuffleBlock(int64_t in_channels, int64_t out_channels, int64_t stride, int64_t kernel_size);
  int64_t kernel_size() const { return kernel_size_; }

 protected:
  ShuffleBlock(const std::string& type_name, int64_t in_channels, int64_t out_channels,
               int64_t stride, int64_t kernel_size);
  torch::Tensor forward(const torch::Tensor& input) override;

  int64_t in_channels_, out_channels_, stride_, kernel_size_, mid_channels_;
  std::shared_ptr<nn::Sequential> branch1_;  // stride 2 only
  std::shared_ptr<nn::Sequential> branch2_;
  std::shared_ptr<nn::Chunk> first_half_, second_half_;  // stride 1 only
  std::shared_ptr<nn::Concat> concat_;
  std::shared_ptr<nn::ChannelShuffle> shuffle_;
};

/// Main branch of three (3x3 depthwise conv-BN, 1x1 conv-BN-ReLU), the first with the
/// block's stride.
class ShuffleXception : public ShuffleBlock {
 public:
  ShuffleXception(int64_t in_channels, int64_t out_channels, int64_t stride);
};

}  // namespace razor
