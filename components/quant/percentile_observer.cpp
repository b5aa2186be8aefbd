#include "components/quant/percentile_observer.h"

#include <cmath>
#include <limits>

#include "components/quant/minmax_observers.h"
#include "engine/error.h"

namespace razor::quant {

using detail::kInf;

namespace {

// The q-quantile (q in [0, 1]) of the flat tensor `x` of n > 0 values: linear interpolation
// between the order statistics at floor/ceil of q * (n - 1). kthvalue keeps it O(n) and
// free of torch.quantile's 2^24-element limit.
torch::Tensor interpolated_quantile(const torch::Tensor& x, double q) {
  const int64_t n = x.numel();
  const double pos = q * static_cast<double>(n - 1);
  const auto below = static_cast<int64_t>(std::floor(pos));
  const int64_t above = std::min(below + 1, n - 1);
  const double weight = pos - static_cast<double>(below);
  const auto lo = std::get<0>(torch::kthvalue(x, below + 1));
  if (weight == 0.0 || above == below) return lo;
  const auto hi = std::get<0>(torch::kthvalue(x, above + 1));
  return torch::lerp(lo, hi, weight);
}

}  // namespace

PercentileObserver::PercentileObserver(const ObserverOptions& options,
                                       const PercentileOptions& percentile)
    : Observer("PercentileObserver", options, QScheme::PerTensorAffine), options_(percentile) {
  RAZOR_CHECK(options_.percentile > 50 && options_.percentile <= 100, type_name(),
              ": percentile must be in (50, 100], got ", options_.percentile);
  detail::check_averaging_constant(type_name(), options_.averaging_constant);
  min_val_ = register_buffer("min_val", torch::full({}, kInf, torch::kFloat));
  max_val_ = register_buffer("max_val", torch::full({}, -kInf, torch::kFloat));
}

void PercentileObserver::observe(const torch::Tensor& x) {
  if (x.numel() == 0) return;
  torch::NoGradGuard no_grad;
  const auto flat = x.detach().to(torch::kFloat).reshape({-1});
  const double q = options_.percentile / 100;
  const auto cur_min = interpolated_quantile(flat, 1 - q);
  const auto cur_max = interpolated_quantile(flat, q);
  const auto [new_min, new_max] =
      detail::moving_average(min_val_, max_val_, cur_min, cur_max, options_.averaging_constant);
  min_val_.copy_(new_min);
  max_val_.copy_(new_max);
}

QParams PercentileObserver::calculate_qparams() { return qparams_from_min_max(min_val_, max_val_); }

void PercentileObserver::reset() {
  torch::NoGradGuard no_grad;
  min_val_.fill_(kInf);
  max_val_.fill_(-kInf);
}

}  // namespace razor::quant
