#include "components/distill/losses/kl_divergence.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
const std::vector<std::string> kKlReductions = {"none", "batchmean", "sum", "mean"};
}

KLDivergence::KLDivergence(KLDivergenceOptions options)
    : DistillLoss("KLDivergence", options.loss_weight), options_(std::move(options)) {
  check_choice("KLDivergence", "reduction", options_.reduction, kKlReductions);
}

std::shared_ptr<DistillLoss> KLDivergence::from_args(Args& args, const BuildContext&) {
  KLDivergenceOptions options;
  options.tau = args.get<double>("tau", options.tau);
  options.reduction = read_choice(args, "reduction", options.reduction, kKlReductions);
  options.teacher_detach = args.get<bool>("teacher_detach", options.teacher_detach);
  options.loss_weight = args.get<double>("loss_weight", options.loss_weight);
  return std::make_shared<KLDivergence>(options);
}

std::vector<LossArgument> KLDivergence::arguments() const { return {{"preds_S"}, {"preds_T"}}; }

torch::Tensor KLDivergence::forward(const LossInputs& inputs) {
  const auto& preds_s = loss_input(inputs, "preds_S", name());
  auto preds_t = loss_input(inputs, "preds_T", name());
  if (options_.teacher_detach) preds_t = preds_t.detach();
  const double tau = options_.tau;
  auto log_p_s = torch::log_softmax(preds_s / tau, 1);
  auto p_t = torch::softmax(preds_t / tau, 1);
  // kl_div's pointwise term, p_T * (log p_T - log p_S), with 0 where p_T is 0.
  auto pointwise = torch::xlogy(p_t, p_t) - p_t * log_p_s;
  return loss_weight_ * tau * tau * reduce_loss(pointwise, options_.reduction);
}

}  // namespace razor::distill
