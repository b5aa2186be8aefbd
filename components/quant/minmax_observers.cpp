#include "components/quant/minmax_observers.h"

#include <limits>

#include "engine/error.h"

namespace razor::quant {

using detail::kInf;

namespace detail {

std::pair<torch::Tensor, torch::Tensor> moving_average(const torch::Tensor& old_min,
                                                       const torch::Tensor& old_max,
                                                       const torch::Tensor& cur_min,
                                                       const torch::Tensor& cur_max, double c) {
  const auto fresh = (old_min == kInf).logical_and(old_max == -kInf);
  // Where fresh, the blend is inf - inf = NaN; torch::where never looks at it there.
  auto new_min = torch::where(fresh, cur_min, old_min + c * (cur_min - old_min));
  auto new_max = torch::where(fresh, cur_max, old_max + c * (cur_max - old_max));
  return {new_min, new_max};
}

void check_averaging_constant(const std::string& type_name, double c) {
  RAZOR_CHECK(c >= 0 && c <= 1, type_name, ": averaging_constant must be in [0, 1], got ", c);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------

MinMaxObserver::MinMaxObserver(const ObserverOptions& options)
    : MinMaxObserver("MinMaxObserver", options) {}

MinMaxObserver::MinMaxObserver(const std::string& type_name, const ObserverOptions& options)
    : Observer(type_name, options, QScheme::PerTensorAffine) {
  check_reduce_range_allowed();
  min_val_ = register_buffer("min_val", torch::full({}, kInf, torch::kFloat));
  max_val_ = register_buffer("max_val", torch::full({}, -kInf, torch::kFloat));
}

torch::Tensor MinMaxObserver::prepare(const torch::Tensor& x) const {
  return x.detach().to(min_val_.dtype());
}

void MinMaxObserver::observe(const torch::Tensor& x) {
  if (x.numel() == 0) return;
  torch::NoGradGuard no_grad;
  const auto [cur_min, cur_max] = torch::aminmax(prepare(x));
  min_val_.copy_(torch::minimum(cur_min, min_val_));
  max_val_.copy_(torch::maximum(cur_max, max_val_));
}

QParams MinMaxObserver::calculate_qparams() { return qparams_from_min_max(min_val_, max_val_); }

void MinMaxObserver::reset() {
  torch::NoGradGuard no_grad;
  min_val_.fill_(kInf);
  max_val_.fill_(-kInf);
}

MovingAverageMinMaxObserver::MovingAverageMinMaxObserver(const ObserverOptions& options,
                                                         double averaging_constant)
    : MinMaxObserver("MovingAverageMinMaxObserver", options),
      averaging_constant_(averaging_constant) {
  detail::check_averaging_constant(type_name(), averaging_constant);
}

void MovingAverageMinMaxObserver::observe(const torch::Tensor& x) {
  if (x.numel() == 0) return;
  torch::NoGradGuard no_grad;
  const auto [cur_min, cur_max] = torch::aminmax(prepare(x));
  const auto [new_min, new_max] =
      detail::moving_average(min_val_, max_val_, cur_min, cur_max, averaging_constant_);
  min_val_.copy_(new_min);
  max_val_.copy_(new_max);
}

// ---------------------------------------------------------------------------------------------

PerChannelMinMaxObserver::PerChannelMinMaxObserver(const ObserverOptions& options)
    : PerChannelMinMaxObserver("PerChannelMinMaxObserver", options) {}

PerChannelMinMaxObserver::PerChannelMinMaxObserver(const std::string& type_name,
                                                   const ObserverOptions& options)
    : Observer(type_name, options, QScheme::PerChannelAffine) {
  check_reduce_range_allowed();
  const int64_t n = std::max<int64_t>(num_channels(), 0);
  min_val_ = register_buffer("min_val", torch::full({n}, kInf, torch::kFloat));
  max_val_ = register_buffer("max_val", torch::full({n}, -kInf, torch::kFloat));
}

torch::Tensor PerChannelMinMaxObserver::prepare(const torch::Tensor& x) const {
  auto y = channels_first(x.detach()).to(min_val_.dtype());
  RAZOR_CHECK(num_channels() < 0 || y.size(0) == num_channels(), type_name(), ": expected ",
              num_channels(), " channels along ch_axis ", ch_axis(), ", got ", y.size(0));
  return y;
}

void PerChannelMinMaxObserver::store(const torch::Tensor& min, const torch::Tensor& max) {
  if (!min_val_.sizes().equals(min.sizes())) {
    min_val_.resize_(min.sizes());
    max_val_.resize_(max.sizes());
  }
  min_val_.copy_(min);
  max_val_.copy_(max);
}

void PerChannelMinMaxObserver::observe(const torch::Tensor& x) {
  if (x.numel() == 0) return;
  torch::NoGradGuard no_grad;
  update(prepare(x));
}

void PerChannelMinMaxObserver::update(const torch::Tensor& y) {
  auto [cur_min, cur_max] = torch::aminmax(y, /*dim=*/1);
  if (min_val_.numel() != 0) {
    RAZOR_CHECK(min_val_.size(0) == cur_min.size(0), type_name(), ": observed ", cur_min.size(0),
                " channels after ", min_val_.size(0));
    cur_min = torch::minimum(cur_min, min_val_);
    cur_max = torch::maximum(cur_max, max_val_);
  }
  store(cur_min, cur_max);
}

QParams PerChannelMinMaxObserver::calculate_qparams() {
  return qparams_from_min_max(min_val_, max_val_);
}

void PerChannelMinMaxObserver::reset() {
  torch::NoGradGuard no_grad;
  if (num_channels() > 0) {
    min_val_.fill_(kInf);
    max_val_.fill_(-kInf);
  } else {
    min_val_.resize_({0});
    max_val_.resize_({0});
  }
}

MovingAveragePerChannelMinMaxObserver::MovingAveragePerChannelMinMaxObserver(
    const ObserverOptions& options, double averaging_constant)
    : PerChannelMinMaxObserver("MovingAveragePerChannelMinMaxObserver", options),
      averaging_constant_(averaging_constant) {
  detail::check_averaging_constant(type_name(), averaging_constant);
}

void MovingAveragePerChannelMinMaxObserver::update(const torch::Tensor& y) {
  auto [cur_min, cur_max] = torch::aminmax(y, /*dim=*/1);
  if (min_val_.numel() == 0) {
    store(cur_min, cur_max);
    return;
  }
  RAZOR_CHECK(min_val_.size(0) == cur_min.size(0), type_name(), ": observed ", cur_min.size(0),
              " channels after ", min_val_.size(0));
  const auto [new_min, new_max] =
      detail::moving_average(min_val_, max_val_, cur_min, cur_max, averaging_constant_);
  store(new_min, new_max);
}

}  // namespace razor::quant
