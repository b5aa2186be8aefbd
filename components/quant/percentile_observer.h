#pragma once
// A percentile observer (razor's own; torch.ao has none): clips outliers by taking the range
// between two percentiles of each observation instead of its extremes.
#include "components/quant/observer.h"

namespace razor::quant {

struct PercentileOptions {
  /// Upper percentile in (50, 100]; the lower one is 100 - percentile. 100 is min/max.
  double percentile = 99.99;
  /// Moving average over observations, as MovingAverageMinMaxObserver's (the first
  /// observation sets the range; 1 keeps only the latest).
  double averaging_constant = 0.1;

  // clang-format off
  PercentileOptions& with_percentile(double v) { percentile = v; return *this; }
  PercentileOptions& with_averaging_constant(double v) { averaging_constant = v; return *this; }
  // clang-format on
};

/// Per tensor. Each observation gives lo = P_{100-p}(x) and hi = P_p(x), percentiles with
/// linear interpolation between order statistics (numpy's and torch.quantile's default:
/// position q * (n - 1) in the sorted values); min_val/max_val follow them with a moving
/// average. Scale and zero point as MinMaxObserver's from (min_val, max_val).
class PercentileObserver : public Observer {
 public:
  explicit PercentileObserver(const ObserverOptions& options = {},
                              const PercentileOptions& percentile = {});
  void observe(const torch::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset() override;

  const PercentileOptions& percentile_options() const { return options_; }
  const torch::Tensor& min_val() const { return min_val_; }
  const torch::Tensor& max_val() const { return max_val_; }

 private:
  PercentileOptions options_;
  torch::Tensor min_val_, max_val_;
};

}  // namespace razor::quant
