#include "components/distill/connectors/conv_module_connector.h"

namespace razor {

ConvModuleConnector::ConvModuleConnector(const nn::ConvModuleOptions& options) : Connector("ConvModuleConnector") {
  conv_module_ = register_module("conv_module", std::make_shared<nn::ConvModule>(options));
}

std::shared_ptr<Connector> ConvModuleConnector::from_args(Args& args, const BuildContext&) {
  nn::ConvModuleOptions options(args.require<int64_t>("in_channel"), args.require<int64_t>("out_channel"),
                                args.get<int64_t>("kernel_size", 1));
  options.stride = args.get<int64_t>("stride", 1);
  options.padding = args.get<int64_t>("padding", 0);
  options.dilation = args.get<int64_t>("dilation", 1);
  options.groups = args.get<int64_t>("groups", 1);
  const auto norm = layer_type(args, "norm_cfg", "");
  if (norm && *norm != "BN") args.fail("norm_cfg", "unknown norm \"" + *norm + "\" (razor has \"BN\")");
  options.norm = norm.has_value();
  options.activation = layer_type(args, "act_cfg", "ReLU").value_or("");
  if (args.has("bias")) {
    const Json& bias = args.raw("bias");
    if (bias.is_boolean()) {
      options.bias = bias.get<bool>();
    } else if (!(bias.is_string() && bias.get<std::string>() == "auto")) {
      args.fail("bias", "expected true, false or \"auto\"");
    }
  }
  if (options.in_channels <= 0 || options.out_channels <= 0) args.fail("in_channel", "channels must be positive");
  return std::make_shared<ConvModuleConnector>(options);
}

std::vector<torch::Tensor> ConvModuleConnector::forward(const torch::Tensor& input) { return {(*conv_module_)(input)}; }

}  // namespace razor
