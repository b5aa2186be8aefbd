#include "components/channel/dcff_channel_unit.h"

#include <torch/torch.h>

#include "components/nn/conv.h"

namespace razor::channel {

namespace {

/// The output-side convs that fuse: groups = 1, every output channel in the unit.
template <class F>
void for_each_fused_conv(const ChannelUnitSpec& spec, F&& f) {
  for (const auto& c : spec.output_related) {
    auto* conv = dynamic_cast<nn::Conv2d*>(c.module);
    if (conv && conv->options().groups == 1 && c.start == 0 && c.end == conv->out_width()) f(*conv);
  }
}

}  // namespace

torch::Tensor dcff_fusion_rows(const torch::Tensor& weight, int64_t k, double tau) {
  torch::NoGradGuard no_grad;
  const torch::Tensor w = weight.detach().flatten(1).to(torch::kFloat);
  const torch::Tensor p = torch::softmax(-torch::cdist(w, w) / tau, 1);
  constexpr double eps = 1e-7;
  const torch::Tensor v = (p + eps).log().mean(1);
  const torch::Tensor score = (p * (p + eps).log() - p * v.unsqueeze(0)).mean(1).cpu();
  const torch::Tensor order = std::get<1>(score.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const torch::Tensor kept = std::get<0>(order.narrow(0, 0, k).sort()).to(p.device());
  return p.index_select(0, kept);
}

void DCFFChannelUnit::prepare_for_pruning() {
  for_each_fused_conv(spec(), [](nn::Conv2d& conv) { conv.enable_output_fusion(); });
}

void DCFFChannelUnit::calc_information(double tau) {
  for_each_fused_conv(spec(), [&](nn::Conv2d& conv) {
    conv.set_fusion_rows(dcff_fusion_rows(conv.weight, width(), tau).to(conv.fusion_matrix().dtype()));
  });
}

}  // namespace razor::channel
