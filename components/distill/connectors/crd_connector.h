#pragma once
// MMRazor's CRDConnector: the embedding head of contrastive representation distillation,
// flatten -> linear (dim_in -> dim_out) -> L2-normalise each row.
//   { type = "CRDConnector", dim_in = 64, dim_out = 128 }
#include "components/distill/connector.h"
#include "components/nn/linear.h"

namespace razor {

class CRDConnector : public Connector {
 public:
  CRDConnector(int64_t dim_in, int64_t dim_out);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;
  nn::Linear& linear() const { return *linear_; }

 private:
  std::shared_ptr<nn::Linear> linear_;
};

}  // namespace razor
