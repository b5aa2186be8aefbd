#include "components/nn/conv.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/error.h"

namespace razor::nn {

Conv2d::Conv2d(const Conv2dOptions& options) : WeightedOp("Conv2d"), options_(options) {
  RAZOR_CHECK(options.in_channels > 0 && options.out_channels > 0 && options.kernel_size > 0,
              "Conv2d: channels and kernel size must be positive, got ", options.in_channels,
              " -> ", options.out_channels, ", kernel ", options.kernel_size);
  RAZOR_CHECK(options.stride > 0 && options.dilation > 0 && options.padding >= 0,
              "Conv2d: stride and dilation must be positive and padding non-negative");
  RAZOR_CHECK(options.groups > 0 && options.in_channels % options.groups == 0 &&
                  options.out_channels % options.groups == 0,
              "Conv2d: groups (", options.groups, ") must divide in_channels (",
              options.in_channels, ") and out_channels (", options.out_channels, ")");
  weight = register_parameter(
      "weight", torch::empty({options.out_channels, options.in_channels / options.groups,
                              options.kernel_size, options.kernel_size}));
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanOut, torch::kReLU);
  }
  if (options.bias) bias = register_parameter("bias", torch::zeros({options.out_channels}));
}

torch::Tensor Conv2d::apply(const torch::Tensor& input, const torch::Tensor& weight,
                            const torch::Tensor& bias) const {
  return torch::conv2d(input, weight, bias, options_.stride, options_.padding, options_.dilation,
                       options_.groups);
}

void Conv2d::pretty_print(std::ostream& stream) const {
  stream << "Conv2d(" << options_.in_channels << ", " << options_.out_channels
         << ", kernel_size=" << options_.kernel_size << ", stride=" << options_.stride;
  if (options_.padding != 0) stream << ", padding=" << options_.padding;
  if (options_.dilation != 1) stream << ", dilation=" << options_.dilation;
  if (options_.groups != 1) stream << ", groups=" << options_.groups;
  if (!options_.bias) stream << ", bias=false";
  stream << ")";
}

}  // namespace razor::nn
