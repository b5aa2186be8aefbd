#include "components/quant/lsq_observers.h"

#include <cmath>
#include <limits>

#include "engine/dist.h"

namespace razor::quant {

using detail::kNaN;

namespace {

// In a multi-process run every rank must start from the same quantiser, or the replicas
// drift apart: the ranks' mean of tensor_norm (MMRazor's sync_tensor of the scale; equal to
// the whole batch's mean|x| when the ranks' batches are equally large) and the global range,
// so that the zero point, which MMRazor leaves per rank, agrees as well.
void sync_over_ranks(torch::Tensor& norm, torch::Tensor& min_val, torch::Tensor& max_val) {
  if (dist::world_size() <= 1) return;
  norm.div_(dist::world_size());
  dist::all_reduce(norm);
  dist::all_reduce(min_val, dist::ReduceOp::Min);
  dist::all_reduce(max_val, dist::ReduceOp::Max);
}

// 2 * norm / sqrt(quant_max), and 1 where nothing was observed.
torch::Tensor lsq_scale(const torch::Tensor& norm, int64_t quant_max) {
  auto scale = 2 * norm / std::sqrt(static_cast<double>(quant_max));
  scale = torch::where(torch::isnan(scale), torch::ones_like(scale), scale);
  return scale.dim() == 0 ? scale.reshape({1}) : scale;
}

}  // namespace

LSQObserver::LSQObserver(const ObserverOptions& options) : MinMaxObserver("LSQObserver", options) {
  tensor_norm_ = register_buffer("tensor_norm", torch::full({}, kNaN, torch::kFloat));
}

void LSQObserver::observe(const torch::Tensor& x) {
  if (x.numel() == 0) return;
  torch::NoGradGuard no_grad;
  const auto y = prepare(x);
  tensor_norm_.copy_(y.abs().mean());
  const auto [cur_min, cur_max] = torch::aminmax(y);
  min_val_.copy_(torch::minimum(cur_min, min_val_));
  max_val_.copy_(torch::maximum(cur_max, max_val_));
}

QParams LSQObserver::calculate_qparams() {
  torch::NoGradGuard no_grad;
  sync_over_ranks(tensor_norm_, min_val_, max_val_);
  QParams out = MinMaxObserver::calculate_qparams();
  out.scale = lsq_scale(tensor_norm_, quant_max());
  return out;
}

void LSQObserver::reset() {
  MinMaxObserver::reset();
  torch::NoGradGuard no_grad;
  tensor_norm_.fill_(kNaN);
}

LSQPerChannelObserver::LSQPerChannelObserver(const ObserverOptions& options)
    : PerChannelMinMaxObserver("LSQPerChannelObserver", options) {
  const int64_t n = std::max<int64_t>(num_channels(), 0);
  tensor_norm_ = register_buffer("tensor_norm", torch::full({n}, kNaN, torch::kFloat));
}

void LSQPerChannelObserver::update(const torch::Tensor& y) {
  PerChannelMinMaxObserver::update(y);  // checks the channel count first
  const auto norm = y.abs().mean(1);
  if (!tensor_norm_.sizes().equals(norm.sizes())) tensor_norm_.resize_(norm.sizes());
  tensor_norm_.copy_(norm);
}

QParams LSQPerChannelObserver::calculate_qparams() {
  torch::NoGradGuard no_grad;
  if (tensor_norm_.numel() > 0) sync_over_ranks(tensor_norm_, min_val_, max_val_);
  QParams out = PerChannelMinMaxObserver::calculate_qparams();
  if (tensor_norm_.numel() == 0) return out;  // never observed: (1, 0)
  out.scale = lsq_scale(tensor_norm_, quant_max());
  return out;
}

void LSQPerChannelObserver::reset() {
  PerChannelMinMaxObserver::reset();
  torch::NoGradGuard no_grad;
  if (num_channels() > 0) {
    tensor_norm_.fill_(kNaN);
  } else {
    tensor_norm_.resize_({0});
  }
}

}  // namespace razor::quant
