#include "components/nn/conv_module.h"

#include <torch/torch.h>

#include "components/nn/activation.h"
#include "components/nn/weighted_op.h"

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

bool ConvModule::fuses_for_inference() const {
  // Only where the fused op computes exactly what the three would (up to rounding): no
  // hooks that watch the conv's or the BN's output, no compression step on the weight.
  return bn_ && !is_training() && !bn_->is_training() && conv_->num_hooks() == 0 && bn_->num_hooks() == 0 &&
         !conv_->has_weight_steps();
}

torch::Tensor ConvModule::forward(const torch::Tensor& input) {
  torch::Tensor x;
  if (fuses_for_inference()) {
    // Inference: the BN folded into the conv's weight and bias (a few hundred values), one
    // pass over the activations instead of two.
    const auto [weight, bias] = fold_bn_into(conv_->weight, conv_->bias, bn_.get());
    x = conv_->apply(input, weight, bias);
  } else {
    x = (*conv_)(input);
    if (bn_) x = (*bn_)(x);
  }
  if (!activate_) return x;
  // With nobody holding the conv's or the BN's output, the ReLU overwrites that fresh tensor
  // (torchvision's inplace=True): neither the conv's nor the BN's backward reads its output,
  // and autograd's version check would refuse the in-place step if one did.
  const bool output_unwatched = conv_->num_tensor_hooks() == 0 && (!bn_ || bn_->num_tensor_hooks() == 0);
  if (output_unwatched && activate_->num_tensor_hooks() == 0 && dynamic_cast<ReLU*>(activate_.get())) {
    return x.relu_();
  }
  return (*activate_)(x);
}

}  // namespace razor::nn
