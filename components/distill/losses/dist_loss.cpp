#include "components/distill/losses/dist_loss.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
// 1 - the mean over rows of the Pearson correlation of the rows of a and b (eps 1e-8 in the
// cosine's denominator, as MMRazor).
torch::Tensor one_minus_pearson(const torch::Tensor& a, const torch::Tensor& b) {
  auto ac = a - a.mean(1, true);
  auto bc = b - b.mean(1, true);
  auto cosine = (ac * bc).sum(1) / (ac.norm(2, 1) * bc.norm(2, 1) + 1e-8);
  return 1.0 - cosine.mean();
}
}  // namespace

DISTLoss::DISTLoss(DISTLossOptions options)
    : DistillLoss("DISTLoss", options.loss_weight), options_(options) {}

std::shared_ptr<DistillLoss> DISTLoss::from_args(Args& args, const BuildContext&) {
  DISTLossOptions options;
  options.inter_loss_weight = args.get<double>("inter_loss_weight", options.inter_loss_weight);
  options.intra_loss_weight = args.get<double>("intra_loss_weight", options.intra_loss_weight);
  options.tau = args.get<double>("tau", options.tau);
  options.loss_weight = args.get<double>("loss_weight", options.loss_weight);
  options.teacher_detach = args.get<bool>("teacher_detach", options.teacher_detach);
  return std::make_shared<DISTLoss>(options);
}

std::vector<LossArgument> DISTLoss::arguments() const { return {{"logits_S"}, {"logits_T"}}; }

torch::Tensor DISTLoss::forward(const LossInputs& inputs) {
  const auto& logits_s = loss_input(inputs, "logits_S", name());
  auto logits_t = loss_input(inputs, "logits_T", name());
  RAZOR_CHECK(logits_s.dim() == 2 && logits_s.sizes() == logits_t.sizes(),
              "DISTLoss: expected N x C logits of equal shape, got ", logits_s.sizes(), " and ",
              logits_t.sizes());
  if (options_.teacher_detach) logits_t = logits_t.detach();
  const double tau = options_.tau;
  auto y_s = torch::softmax(logits_s / tau, 1);
  auto y_t = torch::softmax(logits_t / tau, 1);
  auto inter = one_minus_pearson(y_s, y_t);
  auto intra = one_minus_pearson(y_s.t(), y_t.t());
  return loss_weight_ * tau * tau *
         (options_.inter_loss_weight * inter + options_.intra_loss_weight * intra);
}

}  // namespace razor::distill
