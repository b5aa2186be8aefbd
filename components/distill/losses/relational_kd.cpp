#include "components/distill/losses/relational_kd.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {

torch::Tensor rows(const torch::Tensor& x, bool l2_norm) {
  auto flat = x.reshape({x.size(0), -1});
  if (l2_norm) flat = flat / flat.norm(2, 1, true).clamp_min(1e-12);
  return flat;
}

// Pairwise Euclidean distances (clamped at 1e-12 before the sqrt), zero diagonal, divided by
// the mean of the positive ones.
torch::Tensor normalized_distances(const torch::Tensor& x) {
  auto square = x.pow(2).sum(1);
  auto d = (square.unsqueeze(1) + square.unsqueeze(0) - 2 * x.mm(x.t())).clamp_min(1e-12).sqrt();
  d = d * (1.0 - torch::eye(x.size(0), d.options()));
  return d / d.index({d > 0}).mean();
}

// <e_ij, e_ik> for every triplet, with e_ij the unit vector from x_i to x_j (0 when equal).
torch::Tensor angles(const torch::Tensor& x) {
  auto diff = x.unsqueeze(0) - x.unsqueeze(1);  // [i][j] = x_j - x_i
  auto unit = diff / diff.norm(2, 2, true).clamp_min(1e-12);
  return unit.bmm(unit.transpose(1, 2)).reshape({-1});
}

}  // namespace

DistanceWiseRKD::DistanceWiseRKD(double loss_weight, bool with_l2_norm)
    : DistillLoss("DistanceWiseRKD", loss_weight), with_l2_norm_(with_l2_norm) {}

std::shared_ptr<DistillLoss> DistanceWiseRKD::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 25.0);
  return std::make_shared<DistanceWiseRKD>(loss_weight, args.get<bool>("with_l2_norm", true));
}

std::vector<LossArgument> DistanceWiseRKD::arguments() const { return {{"preds_S"}, {"preds_T"}}; }

torch::Tensor DistanceWiseRKD::forward(const LossInputs& inputs) {
  auto s = rows(loss_input(inputs, "preds_S", name()), with_l2_norm_);
  auto t = rows(loss_input(inputs, "preds_T", name()), with_l2_norm_);
  return loss_weight_ * torch::smooth_l1_loss(normalized_distances(s), normalized_distances(t));
}

AngleWiseRKD::AngleWiseRKD(double loss_weight, bool with_l2_norm)
    : DistillLoss("AngleWiseRKD", loss_weight), with_l2_norm_(with_l2_norm) {}

std::shared_ptr<DistillLoss> AngleWiseRKD::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 50.0);
  return std::make_shared<AngleWiseRKD>(loss_weight, args.get<bool>("with_l2_norm", true));
}

std::vector<LossArgument> AngleWiseRKD::arguments() const { return {{"preds_S"}, {"preds_T"}}; }

torch::Tensor AngleWiseRKD::forward(const LossInputs& inputs) {
  auto s = rows(loss_input(inputs, "preds_S", name()), with_l2_norm_);
  auto t = rows(loss_input(inputs, "preds_T", name()), with_l2_norm_);
  return loss_weight_ * torch::smooth_l1_loss(angles(s), angles(t));
}

}  // namespace razor::distill
