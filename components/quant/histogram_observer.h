#pragma once
// torch.ao's HistogramObserver: a running histogram of everything observed, and at
// calculate_qparams an approximate L2-optimal clipping range found by a non-linear search
// over it (caffe2's NormMinimization::NonlinearQuantizationParamsSearch).
#include <cstdint>

#include "components/quant/observer.h"

namespace razor::quant {

struct HistogramOptions {
  /// Bins of the running histogram.
  int64_t bins = 2048;
  /// How finely histograms of different ranges are resampled onto a common grid when a new
  /// observation widens the range.
  int64_t upsample_rate = 128;

  // clang-format off
  HistogramOptions& with_bins(int64_t v) { bins = v; return *this; }
  HistogramOptions& with_upsample_rate(int64_t v) { upsample_rate = v; return *this; }
  // clang-format on
};

/// Per tensor. Buffers "histogram" [bins], "min_val", "max_val" (0-d; +inf / -inf before the
/// first observation), "eps".
///
/// observe (as torch 2.x, whose arithmetic it follows): +-inf values are ignored; the first
/// observation (or one after a degenerate range, max - min < 1e-6) sets min/max and the
/// histogram; a later one widens the range to cover both (only the max moves further, to
/// keep a whole number of coarse bins), bins the new values over it, and adds the old
/// histogram upsampled by upsample_rate, shifted and integrated down (torch's
/// _adjust_min_max / _combine_histograms).
///
/// calculate_qparams: torch's _non_linear_param_search (moving the start or end bin inwards
/// by quantile steps of 1e-5 while the L2 quantisation error of _compute_quantization_error,
/// with 2^8 destination bins, decreases), then the min/max scale and zero point of that range.
class HistogramObserver : public Observer {
 public:
  explicit HistogramObserver(const ObserverOptions& options = {},
                             const HistogramOptions& histogram = {});
  void observe(const torch::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset() override;

  const HistogramOptions& histogram_options() const { return options_; }
  const torch::Tensor& histogram() const { return histogram_; }
  const torch::Tensor& min_val() const { return min_val_; }
  const torch::Tensor& max_val() const { return max_val_; }

  /// The clipping range the search picks (0-d tensors), as torch's _non_linear_param_search.
  std::pair<torch::Tensor, torch::Tensor> search_range() const;
  /// torch's _compute_quantization_error: the L2 error of quantising the histogram with the
  /// range from bin `start_bin` to bin `end_bin` (inclusive).
  double quantization_error(int64_t start_bin, int64_t end_bin) const;

 private:
  void reset_histogram(const torch::Tensor& x, const torch::Tensor& min, const torch::Tensor& max);
  torch::Tensor combine_histograms(const torch::Tensor& orig_hist, const torch::Tensor& new_hist,
                                   int64_t downsample_rate, int64_t start_idx) const;

  HistogramOptions options_;
  /// Destination bins of the error model: 2^8 for both 8-bit dtypes, whatever the range.
  int64_t dst_nbins_ = 256;
  torch::Tensor histogram_, min_val_, max_val_;
};

}  // namespace razor::quant
