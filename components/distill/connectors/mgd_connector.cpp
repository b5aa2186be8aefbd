#include "components/distill/connectors/mgd_connector.h"

#include <torch/torch.h>

namespace razor {

namespace nnt = torch::nn;

MGDConnector::MGDConnector(int64_t student_channels, int64_t teacher_channels, double lambda_mgd, bool mask_on_channel)
    : Connector("MGDConnector"), lambda_mgd_(lambda_mgd), mask_on_channel_(mask_on_channel) {
  if (student_channels != teacher_channels) {
    align_ = register_module("align", nnt::Conv2d(nnt::Conv2dOptions(student_channels, teacher_channels, 1)));
  }
  generation_ = register_module(
      "generation", nnt::Sequential(nnt::Conv2d(nnt::Conv2dOptions(teacher_channels, teacher_channels, 3).padding(1)),
                                    nnt::ReLU(),
                                    nnt::Conv2d(nnt::Conv2dOptions(teacher_channels, teacher_channels, 3).padding(1))));
}

std::shared_ptr<Connector> MGDConnector::from_args(Args& args, const BuildContext&) {
  const int64_t s = args.require<int64_t>("student_channels"), t = args.require<int64_t>("teacher_channels");
  if (s <= 0) args.fail("student_channels", "must be positive");
  if (t <= 0) args.fail("teacher_channels", "must be positive");
  const double lambda = args.get<double>("lambda_mgd", 0.65);
  if (lambda < 0 || lambda > 1) args.fail("lambda_mgd", "must be in [0, 1]");
  return std::make_shared<MGDConnector>(s, t, lambda, args.get<bool>("mask_on_channel", false));
}

torch::Tensor MGDConnector::draw_mask(const torch::Tensor& feature) const {
  const auto n = feature.size(0), c = feature.size(1), h = feature.size(2), w = feature.size(3);
  auto uniform = mask_on_channel_ ? torch::rand({n, c, 1, 1}) : torch::rand({n, 1, h, w});
  // Dropped where the draw exceeds 1 - lambda, i.e. with probability lambda.
  return (uniform <= 1.0 - lambda_mgd_).to(feature.device(), feature.scalar_type());
}

torch::Tensor MGDConnector::generate(const torch::Tensor& input, const torch::Tensor& mask) {
  auto feature = align_ ? align_->forward(input) : input;
  return generation_->forward(feature * mask);
}

std::vector<torch::Tensor> MGDConnector::forward(const torch::Tensor& input) {
  auto feature = align_ ? align_->forward(input) : input;
  return {generation_->forward(feature * draw_mask(feature))};
}

}  // namespace razor
