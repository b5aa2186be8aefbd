#include "components/distill/connectors/crd_connector.h"

#include <torch/torch.h>

#include "engine/error.h"

namespace razor {

CRDConnector::CRDConnector(int64_t dim_in, int64_t dim_out) : Connector("CRDConnector") {
  linear_ = register_module("linear", std::make_shared<nn::Linear>(dim_in, dim_out));
}

std::shared_ptr<Connector> CRDConnector::from_args(Args& args, const BuildContext&) {
  const int64_t dim_in = args.get<int64_t>("dim_in", 1024), dim_out = args.get<int64_t>("dim_out", 128);
  if (dim_in <= 0) args.fail("dim_in", "must be positive");
  if (dim_out <= 0) args.fail("dim_out", "must be positive");
  return std::make_shared<CRDConnector>(dim_in, dim_out);
}

std::vector<torch::Tensor> CRDConnector::forward(const torch::Tensor& input) {
  auto x = input.reshape({input.size(0), -1});
  RAZOR_CHECK(x.size(1) == linear_->in_features(), "CRDConnector: dim_in is ", linear_->in_features(),
              " but the record flattens to ", x.size(1), " values per sample");
  x = (*linear_)(x);
  // PyTorch's F.normalize: x / max(||x||, 1e-12).
  return {x / x.norm(2, 1, true).clamp_min(1e-12)};
}

}  // namespace razor
