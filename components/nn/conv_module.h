#pragma once
// mmcv's ConvModule: conv -> BatchNorm -> activation, with mmcv's child names "conv", "bn"
// and "activate" so that mmcls module paths ("backbone.conv1.conv") carry over.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "components/nn/module.h"

namespace razor::nn {

struct ConvModuleOptions {
  ConvModuleOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels(in_channels), out_channels(out_channels), kernel_size(kernel_size) {}
  int64_t in_channels;
  int64_t out_channels;
  int64_t kernel_size;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
  /// With a BatchNorm after the conv.
  bool norm = true;
  /// Activation name (see make_activation), or "" for none.
  std::string activation = "ReLU";
  /// Conv bias; unset means "only without a norm" (mmcv's bias='auto').
  std::optional<bool> bias;

  ConvModuleOptions& with_stride(int64_t v) {
    stride = v;
    return *this;
  }
  ConvModuleOptions& with_padding(int64_t v) {
    padding = v;
    return *this;
  }
  ConvModuleOptions& with_dilation(int64_t v) {
    dilation = v;
    return *this;
  }
  ConvModuleOptions& with_groups(int64_t v) {
    groups = v;
    return *this;
  }
  ConvModuleOptions& with_norm(bool v) {
    norm = v;
    return *this;
  }
  ConvModuleOptions& with_activation(std::string v) {
    activation = std::move(v);
    return *this;
  }
  ConvModuleOptions& with_bias(bool v) {
    bias = v;
    return *this;
  }
};

class ConvModule : public Module {
 public:
  explicit ConvModule(const ConvModuleOptions& options);
  const ConvModuleOptions& options() const { return options_; }

  Conv2d& conv() const { return *conv_; }
  /// Null without a norm.
  BatchNorm2d* bn() const { return bn_.get(); }
  /// Null without an activation.
  Module* activate() const { return activate_.get(); }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  /// In eval mode, with nothing hooked on the conv or the BN and nothing acting on the
  /// weight, forward runs the conv with the BN folded in (as inference runtimes do).
  bool fuses_for_inference() const;

  ConvModuleOptions options_;
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<BatchNorm2d> bn_;
  std::shared_ptr<Module> activate_;
};

}  // namespace razor::nn
