#pragma once
// MMRazor's OFDTeacherConnector: the teacher's pre-ReLU feature clipped from below at a
// per-channel margin, max(t, margin), so that the student is not asked to reproduce
// negative responses that the ReLU would drop anyway. The margins come from the teacher's
// BatchNorm statistics (OFDDistiller::init_ofd_connectors) and are saved with the model.
//   { type = "OFDTeacherConnector" }
#include "components/distill/connector.h"

namespace razor {

class OFDTeacherConnector : public Connector {
 public:
  OFDTeacherConnector();
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  /// One margin per channel (shape C).
  void init_margin(const torch::Tensor& margin);
  bool has_margin() const { return margin_.numel() > 0; }
  const torch::Tensor& margin() const { return margin_; }
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;

 private:
  torch::Tensor margin_;
};

}  // namespace razor
