#include "components/nn/linear.h"

#include <torch/torch.h>

#include <cmath>
#include <ostream>

#include "engine/error.h"

namespace razor::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias)
    : WeightedOp("Linear"), in_features_(in_features), out_features_(out_features) {
  RAZOR_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got ",
              in_features, " -> ", out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = register_parameter("weight",
                              torch::empty({out_features, in_features}).uniform_(-bound, bound));
  if (with_bias)
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
}

torch::Tensor Linear::apply(const torch::Tensor& input, const torch::Tensor& weight,
                            const torch::Tensor& bias) const {
  return torch::linear(input, weight, bias);
}

void Linear::pretty_print(std::ostream& stream) const {
  stream << "Linear(in_features=" << in_features_ << ", out_features=" << out_features_
         << ", bias=" << (bias.defined() ? "true" : "false") << ")";
}

}  // namespace razor::nn
