#pragma once
// MMRazor's BYOTConnector, an auxiliary head of "Be Your Own Teacher" self-distillation:
// an attention mask (separable conv, BN, ReLU, 2x bilinear upsampling, sigmoid) multiplies
// the stage's feature; separable convs then double the channels (and halve the size) until
// `out_channel`, an average pool and an fc give {feature (N x out_channel*expansion),
// logits (N x num_classes)}.
//   { type = "BYOTConnector", in_channel = 16, out_channel = 64, num_classes = 10,
//     expansion = 1, pool_size = 7, kernel_size = 3, stride = 2 }
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "components/distill/connector.h"

namespace razor {

struct BYOTConnectorOptions {
  int64_t in_channel = 0;
  int64_t out_channel = 0;
  int64_t num_classes = 0;
  int64_t expansion = 4;
  int64_t pool_size = 4;
  int64_t kernel_size = 3;
  int64_t stride = 1;
};

class BYOTConnector : public Connector {
 public:
  explicit BYOTConnector(const BYOTConnectorOptions& options);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;

 private:
  torch::nn::Sequential attention_{nullptr}, scala_{nullptr};
  torch::nn::Linear fc_{nullptr};
};

/// Appends DARTS's separable conv as MMRazor builds it: ReLU, depthwise kxk (stride), 1x1,
/// BN, then ReLU, depthwise kxk (in -> out, groups in), 1x1, BN.
void append_darts_sep_conv(torch::nn::Sequential& layers, int64_t in, int64_t out, int64_t kernel_size, int64_t stride);

}  // namespace razor
