#pragma once
// MMRazor's SearchableShuffleNetV2 (the SPOS supernet): a stem ConvModule "conv1", then
// "layers": one Sequential per `arch_setting` row of searchable blocks (the first of each
// row with stride 2), and the last 1x1 ConvModule as the final entry of "layers" — so
// mutables read "backbone.layers.0.0" as in MMRazor's subnet files.
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "components/architectures/backbone.h"
#include "components/nn/conv_module.h"
#include "components/nn/sequential.h"

namespace razor {

struct SearchableShuffleNetV2Options {
  /// (channels, blocks) per stage.
  std::vector<std::pair<int64_t, int64_t>> arch_setting = {{64, 4}, {160, 4}, {320, 8}, {640, 4}};
  int64_t in_channels = 3;
  /// Stem width (16 × stem_multiplier in MMRazor).
  int64_t stem_channels = 16;
  /// 2 for ImageNet; 1 for 28-pixel inputs.
  int64_t stem_stride = 2;
  /// Width of the last 1x1 conv (with_last_layer).
  int64_t last_channels = 1024;
  double widen_factor = 1.0;
  bool with_last_layer = true;
};

class SearchableShuffleNetV2 : public Backbone {
 public:
  /// Builds block `block` of stage `stage`: (stage, block, in, out, stride) -> module
  /// (an op mutable over the candidate blocks, or one fixed block).
  using BlockFactory = std::function<std::shared_ptr<nn::Module>(int64_t, int64_t, int64_t,
                                                                 int64_t, int64_t)>;
  SearchableShuffleNetV2(const SearchableShuffleNetV2Options& options, const BlockFactory& blocks);
  int64_t out_channels() const override { return out_channels_; }
  const SearchableShuffleNetV2Options& options() const { return options_; }
  nn::Sequential& layers() const { return *layers_; }
  /// conv1, every block of every stage, then the last conv.
  std::vector<nn::Module*> sequential_stages() override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  /// MMRazor's init: conv weights normal(0, 1 / fan-in per group) (the stem 0.01), BN weight
  /// 1, bias 1e-4.
  void init_weights();

  SearchableShuffleNetV2Options options_;
  int64_t out_channels_ = 0;
  std::shared_ptr<nn::ConvModule> conv1_;
  std::shared_ptr<nn::Sequential> layers_;
};

}  // namespace razor
