#pragma once
// MMRazor's MGDConnector (masked generative distillation, Yang et al., ECCV 2022): the
// student's feature (aligned to the teacher's channels by a 1x1 conv when they differ) is
// masked at random, positions (N x 1 x H x W) or channels (N x C x 1 x 1) dropped with
// probability lambda_mgd, and a conv3x3-ReLU-conv3x3 generator rebuilds the teacher's
// feature from it. The mask uses torch's global generator (seeded by the run).
//   { type = "MGDConnector", student_channels = 32, teacher_channels = 64, lambda_mgd = 0.65 }
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include "components/distill/connector.h"

namespace razor {

class MGDConnector : public Connector {
 public:
  MGDConnector(int64_t student_channels, int64_t teacher_channels, double lambda_mgd, bool mask_on_channel);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;
  /// The keep-mask for an aligned feature (1 kept, 0 dropped).
  torch::Tensor draw_mask(const torch::Tensor& feature) const;
  /// The generator applied to `feature * mask` (after alignment): forward() without the draw.
  torch::Tensor generate(const torch::Tensor& input, const torch::Tensor& mask);

 private:
  double lambda_mgd_;
  bool mask_on_channel_;
  torch::nn::Conv2d align_{nullptr};
  torch::nn::Sequential generation_{nullptr};
};

}  // namespace razor
