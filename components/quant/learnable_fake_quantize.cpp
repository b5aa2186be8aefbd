#include "components/quant/learnable_fake_quantize.h"

#include <ATen/ops/_fake_quantize_learnable_per_channel_affine.h>
#include <ATen/ops/_fake_quantize_learnable_per_tensor_affine.h>

#include <cmath>
#include <limits>

namespace razor::quant {

LearnableFakeQuantize::LearnableFakeQuantize(std::shared_ptr<Observer> observer,
                                             const LearnableFakeQuantizeOptions& options)
    : FakeQuantizer("LearnableFakeQuantize", std::move(observer)), options_(options) {
  const int64_t n = initial_qparams_size();
  scale_ = register_parameter("scale", torch::full({n}, options_.scale, torch::kFloat));
  const auto zero_point = torch::full({n}, options_.zero_point, torch::kFloat);
  zero_point_ = options_.zero_point_trainable ? register_parameter("zero_point", zero_point)
                                              : register_buffer("zero_point", zero_point);
  learning_enabled_ = register_buffer("learning_enabled", torch::zeros({1}, torch::kUInt8));
  eps_ = register_buffer("eps",
                         torch::full({1}, std::numeric_limits<float>::epsilon(), torch::kFloat));
  apply_learning_flag(false);
}

void LearnableFakeQuantize::apply_learning_flag(bool on) {
  scale_.requires_grad_(on);
  if (options_.zero_point_trainable) zero_point_.requires_grad_(on);
}

void LearnableFakeQuantize::toggle_qparam_learning(bool on) {
  learning_flag_.set(learning_enabled_, on);
  apply_learning_flag(on);
}

void LearnableFakeQuantize::enable_param_learning() {
  toggle_qparam_learning(true);
  enable_fake_quant(true);
  enable_observer(false);
}

void LearnableFakeQuantize::enable_static_estimate() {
  toggle_qparam_learning(false);
  enable_fake_quant(true);
  enable_observer(true);
}

void LearnableFakeQuantize::enable_val() {
  toggle_qparam_learning(false);
  enable_fake_quant(true);
  enable_observer(false);
}

void LearnableFakeQuantize::enable_static_observation() {
  toggle_qparam_learning(false);
  enable_fake_quant(false);
  enable_observer(true);
}

double LearnableFakeQuantize::grad_factor(int64_t numel) const {
  if (!options_.use_grad_scaling) return 1.0;
  return 1.0 / std::sqrt(static_cast<double>(numel) * static_cast<double>(quant_max()));
}

QParams LearnableFakeQuantize::calculate_qparams() {
  torch::NoGradGuard no_grad;
  scale_.copy_(torch::maximum(scale_, eps_));
  return {scale_.detach().clone(),
          zero_point_.detach().round().clamp(quant_min(), quant_max()).to(torch::kLong)};
}

void LearnableFakeQuantize::reset_statistics() {
  FakeQuantizer::reset_statistics();
  torch::NoGradGuard no_grad;
  scale_.fill_(1.0);
  zero_point_.zero_();
}

torch::Tensor LearnableFakeQuantize::forward(const torch::Tensor& x) {
  check_input(x);
  const bool learning = learning_enabled();
  if (scale_.requires_grad() != learning) apply_learning_flag(learning);
  {
    torch::NoGradGuard no_grad;
    if (observer_enabled()) {
      observer().observe(x.detach());
      const QParams qp = observer().calculate_qparams();
      if (!scale_.sizes().equals(qp.scale.sizes())) {  // per channel: [1] -> [C]
        scale_.set_data(torch::ones_like(qp.scale));
        zero_point_.set_data(torch::zeros_like(qp.scale));
      }
      scale_.copy_(qp.scale);
      zero_point_.copy_(qp.zero_point);
    }
    // Also after a static estimate: an LSQ observer gives scale 0 for an all-zero channel.
    scale_.copy_(torch::maximum(scale_, eps_));
  }
  if (!fake_quant_enabled()) return x;
  const double factor = grad_factor(x.numel());
  if (per_channel()) {
    return at::_fake_quantize_learnable_per_channel_affine(
        x, scale_, zero_point_, axis_for(x.dim()), quant_min(), quant_max(), factor);
  }
  return at::_fake_quantize_learnable_per_tensor_affine(x, scale_, zero_point_, quant_min(),
                                                        quant_max(), factor);
}

namespace {
template <class F>
void for_each_learnable(torch::nn::Module& root, F f) {
  for (auto* fq : fake_quantizers(root)) {
    if (auto* learnable = dynamic_cast<LearnableFakeQuantize*>(fq)) f(*learnable);
  }
}
}  // namespace

void enable_param_learning(torch::nn::Module& root) {
  for_each_learnable(root, [](LearnableFakeQuantize& fq) { fq.enable_param_learning(); });
}

void enable_static_estimate(torch::nn::Module& root) {
  for_each_learnable(root, [](LearnableFakeQuantize& fq) { fq.enable_static_estimate(); });
}

void enable_val(torch::nn::Module& root) {
  for_each_learnable(root, [](LearnableFakeQuantize& fq) { fq.enable_val(); });
}

}  // namespace razor::quant
