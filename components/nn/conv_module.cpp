#include "components/nn/conv_module.h"

#include <torch/torch.h>

#include "components/nn/activation.h"

namespace razor::nn {

ConvModule::ConvModule(const ConvModuleOptions& options) : Module("ConvModule"), options_(options) {
  conv_ = register_module(
      "conv", std::make_shared<Conv2d>(
                  Conv2dOptions(options.in_channels, options.out_channels, options.kernel_size)
                      .with_stride(options.stride)
                      .with_padding(options.padding)
                      .with_dilation(options.dilation)
                      .with_groups(options.groups)
                      .with_bias(options.bias.value_or(!options.norm))));
  if (options.norm)
    bn_ = register_module("bn", std::make_shared<BatchNorm2d>(options.out_channels));
  if (!options.activation.empty())
    activate_ = register_module("activate", make_activation(options.activation));
}

torch::Tensor ConvModule::forward(const torch::Tensor& input) {
  torch::Tensor x = (*conv_)(input);
  if (bn_) x = (*bn_)(x);
  if (activate_) x = (*activate_)(x);
  return x;
}

}  // namespace razor::nn
