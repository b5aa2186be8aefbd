#pragma once
// What an image classifier needs of a backbone besides forward: the channel count of the
// feature map it returns, so that a head of the wrong width is a config error at build
// time rather than a shape error at the first batch; and, for backbones with several outputs
// (mmcls's tuple of feature maps, DARTS's auxiliary head), all of them.
#include <cstdint>
#include <vector>

#include "components/nn/module.h"

namespace razor {

/// Every output of a backbone: `outs`, the feature maps at its out_indices in order (heads
/// classify the last, as mmcls's take feats[-1]), and `aux`, features that only auxiliary
/// training losses use (DARTS's auxiliary head: MMRazor puts them first in the tuple, in
/// training only), undefined when there are none.
struct BackboneOutputs {
  std::vector<torch::Tensor> outs;
  torch::Tensor aux;
};

class Backbone : public nn::Module {
 public:
  using nn::Module::Module;
  /// Channels of the (N x C x H x W) feature map that forward returns.
  virtual int64_t out_channels() const = 0;
  /// Channels of `BackboneOutputs::aux` (0: the backbone has no auxiliary features).
  virtual int64_t aux_out_channels() const { return 0; }

  /// Whether forward_outputs, in the current mode, gives more than forward's one tensor;
  /// a classifier's loss then takes them all. False for single-output backbones.
  virtual bool has_multiple_outputs() const { return false; }
  /// Every output. The default is {forward(input)} through the hooks; a multi-output
  /// backbone computes them in one pass (its own hooks see only calls of forward, its
  /// children's hooks see every pass), and forward is then the last of `outs`.
  virtual BackboneOutputs forward_outputs(const torch::Tensor& input) {
    return {{(*this)(input)}, torch::Tensor()};
  }

  /// When forward is a chain of child modules, those modules in order: forward(x) equals
  /// stages[n-1](... stages[0](x)), each called through its hooks. Empty when it is not.
  /// A search that scores many subnets of one supernet evaluates stage by stage and keeps a
  /// stage's outputs for the next subnet that shares every choice up to it (SubnetPrefixCache).
  virtual std::vector<nn::Module*> sequential_stages() { return {}; }
};

}  // namespace razor
