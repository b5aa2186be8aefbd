#pragma once
// Ops that move channels without computing on them: one of a tensor's equal channel chunks
// (ShuffleNetV2's split), and the channel shuffle. As op modules the op graph sees them, so
// quantisers, the ONNX writer and the channel analyser follow the values through.
#include <cstdint>

#include "components/nn/module.h"

namespace razor::nn {

/// Interleaves `groups` channel groups: N x (g·c) x H x W -> groups transposed, in x's memory format.
torch::Tensor shuffle_channels(const torch::Tensor& x, int64_t groups);

/// Chunk `index` of `chunks` equal chunks along dim 1 (torch::chunk): channels
/// [index * C / chunks, (index + 1) * C / chunks). A view of the input.
class Chunk : public Module {
 public:
  Chunk(int64_t chunks, int64_t index);
  const OpDescription* description() const override;
  int64_t chunks() const { return chunks_; }
  int64_t index() const { return index_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t chunks_, index_;
};

/// ShuffleNet's channel shuffle: N x (g * c) x H x W viewed as g x c channel groups and
/// transposed, so that output channel j * g + i is input channel i * c + j.
class ChannelShuffle : public Module {
 public:
  explicit ChannelShuffle(int64_t groups);
  const OpDescription* description() const override;
  int64_t groups() const { return groups_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t groups_;
};

}  // namespace razor::nn
