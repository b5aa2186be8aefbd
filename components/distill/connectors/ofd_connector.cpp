#include "components/distill/connectors/ofd_connector.h"

#include <torch/torch.h>

#include "engine/error.h"

namespace razor {

OFDTeacherConnector::OFDTeacherConnector() : Connector("OFDTeacherConnector") {
  margin_ = register_buffer("margin", torch::empty({0}));
}

std::shared_ptr<Connector> OFDTeacherConnector::from_args(Args&, const BuildContext&) {
  return std::make_shared<OFDTeacherConnector>();
}

void OFDTeacherConnector::init_margin(const torch::Tensor& margin) {
  RAZOR_CHECK(margin.dim() == 1, "OFDTeacherConnector: margins are one per channel, got shape ", margin.sizes());
  torch::NoGradGuard no_grad;
  // Replaced in place of the registered buffer so that checkpoints hold the new values.
  margin_.set_(margin.detach().to(margin_.device(), torch::kFloat).clone());
}

std::vector<torch::Tensor> OFDTeacherConnector::forward(const torch::Tensor& input) {
  RAZOR_CHECK(has_margin(), "OFDTeacherConnector: the margins were not set (use an OFDDistiller, whose "
                            "OverhaulFeatureDistillation takes them from the teacher's BatchNorm)");
  RAZOR_CHECK(input.dim() == 4 && input.size(1) == margin_.size(0), "OFDTeacherConnector: ", margin_.size(0),
              " margins for a record of shape ", input.sizes());
  return {torch::max(input.detach(), margin_.to(input.scalar_type()).view({1, -1, 1, 1}))};
}

}  // namespace razor
