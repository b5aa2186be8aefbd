#include "components/nn/dropout.h"
#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"

#include <torch/torch.h>

#include <ostream>

#include "engine/error.h"

namespace razor::nn {

Dropout::Dropout(double p) : Module("Dropout"), p_(p) {
  RAZOR_CHECK(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got ", p);
}

torch::Tensor Dropout::forward(const torch::Tensor& input) {
  return torch::dropout(input, p_, is_training());
}

void Dropout::pretty_print(std::ostream& stream) const { stream << "Dropout(p=" << p_ << ")"; }

// The identity in eval mode, which is what every pass reads.
const OpDescription* Dropout::description() const {
  static const OpDescription d{{QuantRole::kSharesInput}, nullptr, onnx_pass_through,
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

}  // namespace razor::nn
