#include "components/distill/losses/pkd_loss.h"

#include <torch/nn/functional/upsampling.h>

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

namespace {

torch::Tensor standardize(const torch::Tensor& x) {
  const int64_t c = x.size(1);
  auto flat = x.transpose(0, 1).reshape({c, -1});
  auto mean = flat.mean(1, true);
  auto std = flat.std(1, /*unbiased=*/true, /*keepdim=*/true);
  return (flat - mean) / (std + 1e-6);
}

torch::Tensor resize(const torch::Tensor& x, const torch::Tensor& like) {
  namespace F = torch::nn::functional;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{like.size(2), like.size(3)})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

}  // namespace

PKDLoss::PKDLoss(double loss_weight, bool resize_stu)
    : DistillLoss("PKDLoss", loss_weight), resize_stu_(resize_stu) {}

std::shared_ptr<DistillLoss> PKDLoss::from_args(Args& args, const BuildContext&) {
  const double loss_weight = args.get<double>("loss_weight", 1.0);
  return std::make_shared<PKDLoss>(loss_weight, args.get<bool>("resize_stu", true));
}

std::vector<LossArgument> PKDLoss::arguments() const { return {{"preds_S"}, {"preds_T"}}; }

torch::Tensor PKDLoss::forward(const LossInputs& inputs) {
  auto s = loss_input(inputs, "preds_S", name());
  auto t = loss_input(inputs, "preds_T", name());
  RAZOR_CHECK(s.dim() == 4 && t.dim() == 4, "PKDLoss: expected N x C x H x W maps, got ",
              s.sizes(), " and ", t.sizes());
  // As MMRazor: only a different height triggers the resize.
  if (s.size(2) != t.size(2)) {
    if (resize_stu_) {
      s = resize(s, t);
    } else {
      t = resize(t, s);
    }
  }
  RAZOR_CHECK(s.sizes() == t.sizes(), "PKDLoss: student and teacher shapes differ: ", s.sizes(),
              " vs ", t.sizes());
  return loss_weight_ * (standardize(s) - standardize(t)).pow(2).mean() / 2.0;
}

}  // namespace razor::distill
