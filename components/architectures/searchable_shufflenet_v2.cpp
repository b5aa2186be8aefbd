#include "components/architectures/searchable_shufflenet_v2.h"

#include <torch/torch.h>

#include <cmath>

#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "engine/error.h"

namespace razor {

SearchableShuffleNetV2::SearchableShuffleNetV2(const SearchableShuffleNetV2Options& options,
                                               const BlockFactory& blocks)
    : Backbone("SearchableShuffleNetV2"), options_(options) {
  RAZOR_CHECK(!options.arch_setting.empty(), "SearchableShuffleNetV2: arch_setting is empty");
  RAZOR_CHECK(options.stem_stride == 1 || options.stem_stride == 2,
              "SearchableShuffleNetV2: stem_stride must be 1 or 2, got ", options.stem_stride);
  conv1_ = register_module("conv1", std::make_shared<nn::ConvModule>(
                                        nn::ConvModuleOptions(options.in_channels,
                                                              options.stem_channels, 3)
                                            .with_stride(options.stem_stride)
                                            .with_padding(1)));
  layers_ = register_module("layers", std::make_shared<nn::Sequential>());
  int64_t channels = options.stem_channels;
  for (size_t stage = 0; stage < options.arch_setting.size(); ++stage) {
    const auto [width, num_blocks] = options.arch_setting[stage];
    RAZOR_CHECK(width > 0 && num_blocks > 0, "SearchableShuffleNetV2: arch_setting[", stage,
                "] needs positive channels and blocks");
    const auto out = static_cast<int64_t>(std::llround(static_cast<double>(width) * options.widen_factor));
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < num_blocks; ++b) {
      layer->push_back(blocks(static_cast<int64_t>(stage), b, channels, out, b == 0 ? 2 : 1));
      channels = out;
    }
    layers_->push_back(layer);
  }
  out_channels_ = channels;
  if (options.with_last_layer) {
    layers_->push_back(std::make_shared<nn::ConvModule>(
        nn::ConvModuleOptions(channels, options.last_channels, 1)));
    out_channels_ = options.last_channels;
  }
  init_weights();
}

void SearchableShuffleNetV2::init_weights() {
  torch::NoGradGuard no_grad;
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    if (auto* conv = dynamic_cast<nn::Conv2d*>(item.value().get())) {
      const double std = item.key().find("conv1") != std::string::npos
                             ? 0.01
                             : 1.0 / static_cast<double>(conv->weight.size(1));
      conv->weight.normal_(0, std);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(item.value().get())) {
      bn->weight.fill_(1.0);
      bn->bias.fill_(1e-4);
      bn->running_mean.zero_();
    }
  }
}

std::vector<nn::Module*> SearchableShuffleNetV2::sequential_stages() {
  std::vector<nn::Module*> stages = {conv1_.get()};
  for (const auto& item : *layers_) {
    if (auto* stage = dynamic_cast<nn::Sequential*>(item.get())) {
      for (const auto& block : *stage) stages.push_back(block.get());
    } else {
      stages.push_back(item.get());
    }
  }
  return stages;
}

torch::Tensor SearchableShuffleNetV2::forward(const torch::Tensor& input) {
  return (*layers_)((*conv1_)(input));
}

}  // namespace razor
