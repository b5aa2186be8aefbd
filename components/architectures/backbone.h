#pragma once
// What an image classifier needs of a backbone besides forward: the channel count of the
// feature map it returns, so that a head of the wrong width is a config error at build
// time rather than a shape error at the first batch.
#include <cstdint>

#include "components/nn/module.h"

namespace razor {

class Backbone : public nn::Module {
 public:
  using nn::Module::Module;
  /// Channels of the (N x C x H x W) feature map that forward returns.
  virtual int64_t out_channels() const = 0;
};

}  // namespace razor
