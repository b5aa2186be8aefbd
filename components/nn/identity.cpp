#include "components/nn/identity.h"

#include "components/nn/op_description.h"

namespace razor::nn {

const OpDescription* Identity::description() const {
  static const OpDescription d{{QuantRole::kSharesInput}, nullptr, onnx_pass_through,
      channel_flow(ChannelFlow::kPass)};
  return &d;
}

}  // namespace razor::nn
