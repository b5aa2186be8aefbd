#include "components/distill/losses/dkd.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
const std::vector<std::string> kDkdReductions = {"batchmean", "sum", "mean"};
}

DKDLoss::DKDLoss(DKDLossOptions options)
    : DistillLoss("DKDLoss", options.loss_weight), options_(std::move(options)) {
  check_choice("DKDLoss", "reduction", options_.reduction, kDkdReductions);
}

std::shared_ptr<DistillLoss> DKDLoss::from_args(Args& args, const BuildContext&) {
  DKDLossOptions options;
  options.tau = args.get<double>("tau", options.tau);
  options.alpha = args.get<double>("alpha", options.alpha);
  options.beta = args.get<double>("beta", options.beta);
  options.reduction = read_choice(args, "reduction", options.reduction, kDkdReductions);
  options.loss_weight = args.get<double>("loss_weight", options.loss_weight);
  return std::make_shared<DKDLoss>(options);
}

std::vector<LossArgument> DKDLoss::arguments() const {
  return {{"preds_S"}, {"preds_T"}, {"gt_labels"}};
}

torch::Tensor DKDLoss::kl(const torch::Tensor& log_p_s, const torch::Tensor& p_t) const {
  auto pointwise = torch::xlogy(p_t, p_t) - p_t * log_p_s;
  return reduce_loss(pointwise, options_.reduction) * (options_.tau * options_.tau);
}

torch::Tensor DKDLoss::forward(const LossInputs& inputs) {
  const auto& preds_s = loss_input(inputs, "preds_S", name());
  const auto& preds_t = loss_input(inputs, "preds_T", name());
  const auto labels = loss_input(inputs, "gt_labels", name()).reshape({-1, 1}).to(torch::kLong);
  RAZOR_CHECK(preds_s.dim() == 2 && preds_s.sizes() == preds_t.sizes() &&
                  labels.size(0) == preds_s.size(0),
              "DKDLoss: expected N x C logits of equal shape and N labels, got ", preds_s.sizes(),
              ", ", preds_t.sizes(), " and ", labels.size(0), " labels");
  const double tau = options_.tau;
  auto gt_mask = torch::zeros_like(preds_s).scatter_(1, labels, 1.0);
  auto other_mask = 1.0 - gt_mask;

  // TCKD: binary distributions [p_gt, sum of the others].
  auto binary = [&](const torch::Tensor& logits) {
    auto p = torch::softmax(logits / tau, 1);
    return torch::cat({(p * gt_mask).sum(1, true), (p * other_mask).sum(1, true)}, 1);
  };
  auto tckd = kl(torch::log(binary(preds_s)), binary(preds_t));

  // NCKD: distributions over the non-target classes (the target pushed to -1000).
  auto nckd = kl(torch::log_softmax(preds_s / tau - 1000.0 * gt_mask, 1),
                 torch::softmax(preds_t / tau - 1000.0 * gt_mask, 1));
  return loss_weight_ * (options_.alpha * tckd + options_.beta * nckd);
}

}  // namespace razor::distill
