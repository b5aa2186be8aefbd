#pragma once
// MMRazor's NormConnector: one norm layer over the record.
//   { type = "NormConnector", in_channels = 64, norm_cfg = { type = "BN" } }
#include "components/distill/connector.h"
#include "components/nn/batch_norm.h"

namespace razor {

class NormConnector : public Connector {
 public:
  explicit NormConnector(int64_t channels);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;
  nn::BatchNorm2d& norm() const { return *norm_; }

 private:
  std::shared_ptr<nn::BatchNorm2d> norm_;
};

}  // namespace razor
