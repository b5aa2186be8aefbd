#include "components/distill/losses/cwd.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

ChannelWiseDivergence::ChannelWiseDivergence(double tau, double loss_weight)
    : DistillLoss("ChannelWiseDivergence", loss_weight), tau_(tau) {}

std::shared_ptr<DistillLoss> ChannelWiseDivergence::from_args(Args& args, const BuildContext&) {
  const double tau = args.get<double>("tau", 1.0);
  return std::make_shared<ChannelWiseDivergence>(tau, args.get<double>("loss_weight", 1.0));
}

std::vector<LossArgument> ChannelWiseDivergence::arguments() const {
  return {{"preds_S"}, {"preds_T"}};
}

torch::Tensor ChannelWiseDivergence::forward(const LossInputs& inputs) {
  const auto& preds_s = loss_input(inputs, "preds_S", name());
  const auto& preds_t = loss_input(inputs, "preds_T", name());
  RAZOR_CHECK(preds_s.dim() == 4 && preds_s.sizes() == preds_t.sizes(),
              "ChannelWiseDivergence: expected N x C x H x W maps of equal shape, got ",
              preds_s.sizes(), " and ", preds_t.sizes());
  const int64_t n = preds_s.size(0), c = preds_s.size(1);
  const int64_t hw = preds_s.size(2) * preds_s.size(3);
  auto log_p_s = torch::log_softmax(preds_s.reshape({-1, hw}) / tau_, 1);
  auto log_p_t = torch::log_softmax(preds_t.reshape({-1, hw}) / tau_, 1);
  auto loss = (log_p_t.exp() * (log_p_t - log_p_s)).sum() * (tau_ * tau_);
  return loss_weight_ * loss / static_cast<double>(n * c);
}

}  // namespace razor::distill
