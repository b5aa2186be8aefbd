#include "components/distill/connectors/norm_connector.h"

namespace razor {

NormConnector::NormConnector(int64_t channels) : Connector("NormConnector") {
  norm_ = register_module("norm", std::make_shared<nn::BatchNorm2d>(channels));
}

std::shared_ptr<Connector> NormConnector::from_args(Args& args, const BuildContext&) {
  const int64_t channels = args.require<int64_t>("in_channels");
  if (channels <= 0) args.fail("in_channels", "must be positive");
  const auto norm = layer_type(args, "norm_cfg", "");
  if (!norm) args.fail("norm_cfg", "give the norm, e.g. { type = \"BN\" }");
  if (*norm != "BN") args.fail("norm_cfg", "unknown norm \"" + *norm + "\" (razor has \"BN\")");
  return std::make_shared<NormConnector>(channels);
}

std::vector<torch::Tensor> NormConnector::forward(const torch::Tensor& input) { return {(*norm_)(input)}; }

}  // namespace razor
