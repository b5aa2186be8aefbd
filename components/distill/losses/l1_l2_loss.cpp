#include "components/distill/losses/l1_l2_loss.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {
const std::vector<std::string> kL1Reductions = {"none", "mean", "sum"};
}

L1Loss::L1Loss(double loss_weight, std::string reduction)
    : DistillLoss("L1Loss", loss_weight), reduction_(std::move(reduction)) {
  check_choice("L1Loss", "reduction", reduction_, kL1Reductions);
}

std::shared_ptr<DistillLoss> L1Loss::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 1.0);
  return std::make_shared<L1Loss>(loss_weight, read_choice(args, "reduction", "mean", kL1Reductions));
}

std::vector<LossArgument> L1Loss::arguments() const { return {{"s_feature"}, {"t_feature"}}; }

torch::Tensor L1Loss::forward(const LossInputs& inputs) {
  const auto& s = loss_input(inputs, "s_feature", name());
  const auto& t = loss_input(inputs, "t_feature", name());
  return loss_weight_ * reduce_loss((s - t).abs(), reduction_);
}

L2Loss::L2Loss(L2LossOptions options) : DistillLoss("L2Loss", options.loss_weight), options_(options) {}

std::shared_ptr<DistillLoss> L2Loss::from_args(Args& args, const BuildContext&) {
  L2LossOptions options;
  options.loss_weight = args.get<double>("loss_weight", options.loss_weight);
  options.normalize = args.get<bool>("normalize", options.normalize);
  options.mult = args.get<double>("mult", options.mult);
  options.div_element = args.get<bool>("div_element", options.div_element);
  options.dist = args.get<bool>("dist", options.dist);
  return std::make_shared<L2Loss>(options);
}

std::vector<LossArgument> L2Loss::arguments() const { return {{"s_feature"}, {"t_feature"}}; }

torch::Tensor L2Loss::forward(const LossInputs& inputs) {
  auto s = loss_input(inputs, "s_feature", name());
  auto t = loss_input(inputs, "t_feature", name());
  if (options_.normalize) {
    // As MMRazor: no epsilon, an all-zero sample is a division by zero.
    auto normalize = [&](const torch::Tensor& x) {
      auto flat = x.reshape({x.size(0), -1});
      return flat / flat.norm(2, 1, true) * options_.mult;
    };
    s = normalize(s);
    t = normalize(t);
  }
  auto loss = (s - t).pow(2).sum();
  if (options_.dist) {
    loss = loss.sqrt();
  } else if (options_.div_element) {
    loss = loss / static_cast<double>(s.numel());
  } else {
    loss = loss / static_cast<double>(s.size(0));
  }
  return loss_weight_ * loss;
}

}  // namespace razor::distill
