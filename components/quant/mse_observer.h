#pragma once
// An MSE observer (razor's own, after MQBench's MSEObserver): the clipping range that
// minimises the quantisation error of each observation, by a grid search.
#include <cstdint>

#include "components/quant/observer.h"

namespace razor::quant {

struct MSEOptions {
  /// The error is mean(|fake_quant(x) - x|^p) (p = 2: the mean squared error).
  double p = 2.0;
  /// Candidate ranges [r * min(x), r * max(x)] for r = k / num_candidates, k = 1..num_candidates.
  int64_t num_candidates = 100;

  // clang-format off
  MSEOptions& with_p(double v) { p = v; return *this; }
  MSEOptions& with_num_candidates(int64_t v) { num_candidates = v; return *this; }
  // clang-format on
};

/// Per tensor. Each observation fake-quantises x with the scale and zero point of every
/// candidate range (MinMaxObserver's formulas) and keeps the one with the least error (the
/// widest among equals); min_val/max_val are the running min/max of those per-observation
/// optima. Scale and zero point as MinMaxObserver's from (min_val, max_val). The search runs
/// on the input's device without host synchronisation.
class MSEObserver : public Observer {
 public:
  explicit MSEObserver(const ObserverOptions& options = {}, const MSEOptions& mse = {});
  void observe(const torch::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset() override;

  const MSEOptions& mse_options() const { return options_; }
  const torch::Tensor& min_val() const { return min_val_; }
  const torch::Tensor& max_val() const { return max_val_; }

 private:
  MSEOptions options_;
  torch::Tensor min_val_, max_val_;
};

}  // namespace razor::quant
