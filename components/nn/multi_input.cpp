#include "components/nn/multi_input.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/error.h"

namespace razor::nn {

torch::Tensor Add::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() >= 2);
  torch::Tensor out = inputs[0] + inputs[1];
  for (size_t i = 2; i < inputs.size(); ++i) out = out + inputs[i];
  return out;
}

torch::Tensor Concat::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() >= 2);
  return torch::cat(inputs, dim_);
}

void Concat::pretty_print(std::ostream& stream) const { stream << "Concat(dim=" << dim_ << ")"; }

torch::Tensor Mul::forward_inputs(const Inputs& inputs) {
  RAZOR_ASSERT(inputs.size() == 2);
  return inputs[0] * inputs[1];
}

}  // namespace razor::nn
