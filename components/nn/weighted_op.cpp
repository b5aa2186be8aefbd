#include "components/nn/weighted_op.h"

#include <torch/torch.h>

#include "components/nn/batch_norm.h"
#include "engine/error.h"

namespace razor::nn {

namespace {
/// `v` ([C]) shaped to broadcast along dimension 1 of a tensor of `dim` dimensions, or along
/// dimension 0 of a weight (`leading` = true).
torch::Tensor per_channel(const torch::Tensor& v, int64_t dim, bool leading) {
  std::vector<int64_t> shape(static_cast<size_t>(dim), 1);
  shape[leading ? 0 : (dim > 1 ? 1 : 0)] = -1;
  return v.reshape(shape);
}

/// `t` at channels `index` (undefined: all of them).
torch::Tensor pick(const torch::Tensor& t, const torch::Tensor& index) {
  return index.defined() ? t.index_select(0, index) : t;
}

/// (b - mean) * factor + beta: the bias of an op with `bn` folded in for good, at the BN's
/// channels `index` (undefined: all).
torch::Tensor folded_bias(const torch::Tensor& bias, const BatchNorm2d& bn, const torch::Tensor& factor,
                          const torch::Tensor& index = {}) {
  const torch::Tensor mean = pick(bn.running_mean, index);
  torch::Tensor shifted = (bias.defined() ? bias - mean : -mean) * factor;
  return bn.affine() ? shifted + pick(bn.bias, index) : shifted;
}
}  // namespace

void check_active_channels(const torch::Tensor& index, int64_t width, const std::string& what) {
  if (!index.defined()) return;
  RAZOR_CHECK(index.dim() == 1 && index.scalar_type() == torch::kLong, what,
              ": active channels must be a 1-D int64 tensor, got ", index.sizes(), " ", index.scalar_type());
  RAZOR_CHECK(index.size(0) > 0, what, ": at least one channel must stay active");
  const torch::Tensor cpu = index.cpu();
  const auto* v = cpu.data_ptr<int64_t>();
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    RAZOR_CHECK(v[i] >= 0 && v[i] < width, what, ": active channel ", v[i], " is outside [0, ", width, ")");
    RAZOR_CHECK(i == 0 || v[i] > v[i - 1], what, ": active channels must be ascending and unique");
  }
}

void WeightedOp::set_active_channels(torch::Tensor out, torch::Tensor in) {
  check_active_channels(out, out_width(), path() + " (output channels)");
  check_active_channels(in, in_width(), path() + " (input channels)");
  RAZOR_CHECK(!((out.defined() || in.defined()) && weight_fake_quant_), path(),
              ": dynamic width and a weight fake quantiser do not go together; cut the model to its widths "
              "first (make_static)");
  active_out_ = out.defined() ? out.to(weight.device()) : out;
  active_in_ = in.defined() ? in.to(weight.device()) : in;
}

std::pair<torch::Tensor, torch::Tensor> WeightedOp::active_weight(const torch::Tensor& w, const torch::Tensor& b) const {
  torch::Tensor sliced = pick(w, active_out_);
  if (active_in_.defined()) sliced = sliced.index_select(1, active_in_);
  return {sliced, b.defined() ? pick(b, active_out_) : b};
}

void WeightedOp::make_static() {
  if (!has_active_channels()) return;
  torch::NoGradGuard no_grad;
  const auto format = weight.suggest_memory_format();
  auto [w, b] = active_weight(weight.detach(), bias.defined() ? bias.detach() : torch::Tensor());
  weight.set_data(w.contiguous(format));
  if (bias.defined()) bias.set_data(b.contiguous());
  if (out_channel_mask_.defined()) out_channel_mask_ = pick(out_channel_mask_, active_out_);
  active_out_ = active_in_ = torch::Tensor();
  resize_to(weight);
}

void WeightedOp::fold_bn(std::shared_ptr<BatchNorm2d> bn) {
  if (bn) {
    RAZOR_CHECK(bn->num_features() == out_channels(), path(), ": cannot fold a BatchNorm of ", bn->num_features(),
                " features into an op of ", out_channels(), " output channels");
    RAZOR_CHECK(bn->affine(), path(), ": only an affine BatchNorm folds into the op before it");
  }
  if (folded_bn_) folded_bn_->set_folded(false);
  folded_bn_ = std::move(bn);
  if (folded_bn_) folded_bn_->set_folded(true);
}

void WeightedOp::set_out_channel_mask(torch::Tensor mask) {
  if (mask.defined()) {
    RAZOR_CHECK(mask.dim() == 1 && mask.size(0) == out_channels(), path(), ": a channel mask must have shape [",
                out_channels(), "], got ", mask.sizes());
  }
  out_channel_mask_ = std::move(mask);
}

void WeightedOp::set_weight_fake_quant(std::shared_ptr<Module> fake_quant) {
  // torch::nn::Module cannot unregister a child: a quantiser can be replaced, not removed.
  RAZOR_CHECK(fake_quant || !weight_fake_quant_, path(), ": a weight fake quantiser once attached stays");
  if (!fake_quant) return;
  if (weight_fake_quant_) {
    replace_module("weight_fake_quant", fake_quant);
  } else {
    register_module("weight_fake_quant", fake_quant);
  }
  weight_fake_quant_ = std::move(fake_quant);
}

EffectiveWeight WeightedOp::effective_weight() {
  EffectiveWeight e{weight, bias, {}, {}};
  if (has_active_channels()) std::tie(e.weight, e.bias) = active_weight(weight, bias);
  if (folded_bn_) {
    const torch::Tensor factor = pick(fold_factor(*folded_bn_), active_out_);
    const torch::Tensor own_bias = e.bias;
    e.weight = e.weight * per_channel(factor, e.weight.dim(), /*leading=*/true);
    if (folded_bn_->is_training()) {
      e.output_divisor = factor;
      e.output_bias = own_bias;  // added after the division, as torch's ConvBn2d
      e.bias = torch::Tensor();
    } else {
      e.bias = folded_bias(own_bias, *folded_bn_, factor, active_out_);
    }
  }
  if (out_channel_mask_.defined()) {
    const torch::Tensor mask = pick(out_channel_mask_, active_out_).to(e.weight.dtype());
    e.weight = e.weight * per_channel(mask, e.weight.dim(), /*leading=*/true);
    if (e.bias.defined()) e.bias = e.bias * mask;
    if (e.output_bias.defined()) e.output_bias = e.output_bias * mask;
  }
  if (weight_fake_quant_) e.weight = (*weight_fake_quant_)(e.weight);
  if (bias_quant_ && e.bias.defined()) e.bias = bias_quant_(e.bias);
  return e;
}

std::pair<torch::Tensor, torch::Tensor> WeightedOp::deployed_weight(const BatchNorm2d* bn) const {
  torch::Tensor w = weight.detach(), b = bias.defined() ? bias.detach() : torch::Tensor();
  if (bn) std::tie(w, b) = fold_bn_into(w, b, bn);  // per output channel: slicing after it is the same
  if (has_active_channels()) std::tie(w, b) = active_weight(w, b);
  if (out_channel_mask_.defined()) {
    const torch::Tensor mask = pick(out_channel_mask_, active_out_).to(w.dtype());
    w = w * per_channel(mask, w.dim(), /*leading=*/true);
    if (b.defined()) b = b * mask;
  }
  return {w, b};
}

torch::Tensor WeightedOp::forward(const torch::Tensor& input) {
  if (!has_weight_steps()) return apply(input, weight, bias);
  const EffectiveWeight e = effective_weight();
  torch::Tensor out = apply(input, e.weight, e.bias);
  if (e.output_divisor.defined()) {
    out = out / per_channel(e.output_divisor, out.dim(), /*leading=*/false);
    if (e.output_bias.defined()) out = out + per_channel(e.output_bias, out.dim(), /*leading=*/false);
  }
  return out;
}

torch::Tensor fold_factor(const BatchNorm2d& bn) {
  const torch::Tensor sigma = torch::sqrt(bn.running_var + bn.eps());
  return bn.affine() ? bn.weight / sigma : 1.0 / sigma;
}

std::pair<torch::Tensor, torch::Tensor> fold_bn_into(const torch::Tensor& weight, const torch::Tensor& bias,
                                                     const BatchNorm2d* bn) {
  if (!bn) return {weight, bias.defined() ? bias : torch::zeros({weight.size(0)}, weight.options())};
  const torch::Tensor factor = fold_factor(*bn);
  return {weight * per_channel(factor, weight.dim(), /*leading=*/true), folded_bias(bias, *bn, factor)};
}

}  // namespace razor::nn
