#pragma once
// The min/max observers of torch.ao.quantization.observer, with the same buffers ("eps",
// "min_val", "max_val") and the same arithmetic: MinMaxObserver, MovingAverageMinMaxObserver,
// PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver.
#include "components/quant/observer.h"

namespace razor::quant {

/// Running minimum and maximum of everything observed (per tensor). Before the first
/// observation min_val = +inf and max_val = -inf.
class MinMaxObserver : public Observer {
 public:
  explicit MinMaxObserver(const ObserverOptions& options = {});
  void observe(const torch::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset() override;

  const torch::Tensor& min_val() const { return min_val_; }
  const torch::Tensor& max_val() const { return max_val_; }

 protected:
  MinMaxObserver(const std::string& type_name, const ObserverOptions& options);
  /// `x` detached and converted to the statistics' dtype (float).
  torch::Tensor prepare(const torch::Tensor& x) const;
  torch::Tensor min_val_, max_val_;
};

/// The first observation sets min/max; each later one moves them towards the batch's:
/// m <- m + averaging_constant * (batch - m).
class MovingAverageMinMaxObserver : public MinMaxObserver {
 public:
  explicit MovingAverageMinMaxObserver(const ObserverOptions& options = {},
                                       double averaging_constant = 0.01);
  void observe(const torch::Tensor& x) override;
  double averaging_constant() const { return averaging_constant_; }

 private:
  double averaging_constant_;
};

/// Running minimum and maximum per channel of `ch_axis` (default qscheme per_channel_affine).
/// min_val/max_val are empty until the first observation, unless num_channels is given
/// (then [C] of +inf / -inf).
class PerChannelMinMaxObserver : public Observer {
 public:
  explicit PerChannelMinMaxObserver(const ObserverOptions& options = {});
  void observe(const torch::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset() override;

  const torch::Tensor& min_val() const { return min_val_; }
  const torch::Tensor& max_val() const { return max_val_; }

 protected:
  PerChannelMinMaxObserver(const std::string& type_name, const ObserverOptions& options);
  /// Folds the per-channel extremes of `y` ([C, N], channels first) into the state.
  virtual void update(const torch::Tensor& y);
  /// `x` detached, channels first and flattened to [C, N], float; checks C against
  /// num_channels.
  torch::Tensor prepare(const torch::Tensor& x) const;
  /// Writes `min`/`max` ([C]) into the buffers, resizing them if needed.
  void store(const torch::Tensor& min, const torch::Tensor& max);
  torch::Tensor min_val_, max_val_;
};

/// PerChannelMinMaxObserver with moving averages per channel (as MovingAverageMinMaxObserver).
class MovingAveragePerChannelMinMaxObserver : public PerChannelMinMaxObserver {
 public:
  explicit MovingAveragePerChannelMinMaxObserver(const ObserverOptions& options = {},
                                                 double averaging_constant = 0.01);
  double averaging_constant() const { return averaging_constant_; }

 protected:
  void update(const torch::Tensor& y) override;

 private:
  double averaging_constant_;
};

namespace detail {
/// `old + c * (cur - old)`, or `cur` where nothing was observed yet (old min = +inf and
/// old max = -inf): torch's moving-average update, without reading the values on the host.
std::pair<torch::Tensor, torch::Tensor> moving_average(const torch::Tensor& old_min,
                                                       const torch::Tensor& old_max,
                                                       const torch::Tensor& cur_min,
                                                       const torch::Tensor& cur_max, double c);
/// Checks an averaging constant is in (0, 1].
void check_averaging_constant(const std::string& type_name, double c);
}  // namespace detail

}  // namespace razor::quant
