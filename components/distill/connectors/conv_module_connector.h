#pragma once
// MMRazor's ConvModuleConnector: conv (default 1x1) -> [norm] -> [activation], to lift the
// student's channels to the teacher's (FitNets' regressor, OFD's adapter).
//   { type = "ConvModuleConnector", in_channel = 32, out_channel = 64,
//     norm_cfg = { type = "BN" }, act_cfg = "none" }      # act_cfg defaults to ReLU
#include "components/distill/connector.h"
#include "components/nn/conv_module.h"

namespace razor {

class ConvModuleConnector : public Connector {
 public:
  explicit ConvModuleConnector(const nn::ConvModuleOptions& options);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;
  nn::ConvModule& conv_module() const { return *conv_module_; }

 private:
  std::shared_ptr<nn::ConvModule> conv_module_;
};

}  // namespace razor
