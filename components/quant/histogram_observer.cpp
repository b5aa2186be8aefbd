#include "components/quant/histogram_observer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"

namespace razor::quant {

using detail::kInf;

namespace {

// density * integral of t^2 over [begin, end]: the L2 norm of values spread uniformly.
torch::Tensor get_norm(const torch::Tensor& begin, const torch::Tensor& end,
                       const torch::Tensor& density) {
  return density * ((end * end * end - begin * begin * begin) / 3);
}

}  // namespace

HistogramObserver::HistogramObserver(const ObserverOptions& options,
                                     const HistogramOptions& histogram)
    : Observer("HistogramObserver", options, QScheme::PerTensorAffine), options_(histogram) {
  RAZOR_CHECK(options_.bins > 0, type_name(), ": bins must be positive, got ", options_.bins);
  RAZOR_CHECK(options_.upsample_rate > 0, type_name(), ": upsample_rate must be positive, got ",
              options_.upsample_rate);
  histogram_ = register_buffer("histogram", torch::zeros({options_.bins}, torch::kFloat));
  min_val_ = register_buffer("min_val", torch::full({}, kInf, torch::kFloat));
  max_val_ = register_buffer("max_val", torch::full({}, -kInf, torch::kFloat));
}

void HistogramObserver::reset_histogram(const torch::Tensor& x, const torch::Tensor& min,
                                        const torch::Tensor& max) {
  min_val_.copy_(min);
  max_val_.copy_(max);
  torch::histc_out(histogram_, x, options_.bins, min.item<double>(), max.item<double>());
}

torch::Tensor HistogramObserver::combine_histograms(const torch::Tensor& orig_hist,
                                                    const torch::Tensor& new_hist,
                                                    int64_t downsample_rate,
                                                    int64_t start_idx) const {
  const int64_t n = options_.bins, up = options_.upsample_rate;
  // Upsample the old histogram (a piecewise-constant density), place it on the fine grid of
  // the combined range, integrate, and read the integral at every coarse bin edge.
  const auto upsampled = new_hist.repeat_interleave(up);
  auto fine = torch::zeros({n * downsample_rate}, orig_hist.options());
  const int64_t len = std::min(n * up, n * downsample_rate - start_idx);
  if (len > 0) fine.narrow(0, start_idx, len).copy_(upsampled.narrow(0, 0, len));
  const auto integral = torch::cumsum(fine, 0, torch::kDouble)
                            .slice(0, downsample_rate - 1, c10::nullopt, downsample_rate);
  auto shifted = torch::zeros({n}, orig_hist.options());  // float, as torch's
  if (n > 1) shifted.narrow(0, 1, n - 1).copy_(integral.narrow(0, 0, n - 1));
  const auto interpolated = (integral - shifted) / static_cast<double>(up);
  return orig_hist + interpolated.to(torch::kFloat);
}

void HistogramObserver::observe(const torch::Tensor& x_orig) {
  if (x_orig.numel() == 0) return;
  torch::NoGradGuard no_grad;
  auto x = x_orig.detach().to(torch::kFloat);
  auto [x_min, x_max] = torch::aminmax(x);
  if (std::isinf(x_min.item<float>()) || std::isinf(x_max.item<float>())) {
    // Infinite values would make the range infinite; quantisation clamps them anyway.
    x = x.index({x.abs() != kInf});
    if (x.numel() == 0) return;
    std::tie(x_min, x_max) = torch::aminmax(x);
  }
  const float min_v = min_val_.item<float>(), max_v = max_val_.item<float>();
  const bool uninitialized = std::isinf(min_v) && min_v > 0 && std::isinf(max_v) && max_v < 0;
  const bool same_values = min_v == max_v;
  // A tiny range would make the combined grid (and its allocation) enormous.
  const bool close_values = (max_val_ - min_val_ < 1e-6).item<bool>();
  if (uninitialized || same_values || close_values) {
    reset_histogram(x, x_min, x_max);
    return;
  }
  auto combined_min = torch::minimum(x_min, min_val_);
  auto combined_max = torch::maximum(x_max, max_val_);
  // torch's _adjust_min_max: the combined range is a whole number (downsample_rate) of fine
  // bins of width (max - min) / (bins * upsample_rate) per coarse bin; only the max moves.
  const int64_t bins = options_.bins, up = options_.upsample_rate;
  const auto width = max_val_ - min_val_;
  const auto downsample_rate = static_cast<int64_t>(
      torch::ceil(((combined_max - combined_min) / width) * up).item<double>());
  const auto e = static_cast<double>(downsample_rate) / static_cast<double>(up) * width -
                 (combined_max - combined_min);
  const auto start_idx = static_cast<int64_t>(
      torch::round((min_val_ - combined_min) / width * bins * up).item<double>());
  combined_max = combined_max + e;

  auto combined = torch::histc(x, bins, combined_min.item<double>(), combined_max.item<double>());
  if ((combined_min == min_val_).item<bool>() && (combined_max == max_val_).item<bool>()) {
    combined += histogram_;
  } else {
    constexpr double kMaxHistogramBytes = 1e9;
    if (static_cast<double>(bins) * static_cast<double>(downsample_rate) * 4 > kMaxHistogramBytes) {
      reset_histogram(x, x_min, x_max);  // torch's fallback: start over with this batch
      return;
    }
    combined = combine_histograms(combined, histogram_, downsample_rate, start_idx);
  }
  histogram_.copy_(combined);
  min_val_.copy_(combined_min);
  max_val_.copy_(combined_max);
}

double HistogramObserver::quantization_error(int64_t start_bin, int64_t end_bin) const {
  torch::NoGradGuard no_grad;
  const int64_t bins = options_.bins;
  const double bin_width = (max_val_.item<double>() - min_val_.item<double>()) / bins;
  const double dst_bin_width =
      bin_width * static_cast<double>(end_bin - start_bin + 1) / static_cast<double>(dst_nbins_);
  if (dst_bin_width == 0.0) return 0.0;
  const auto options = histogram_.options();
  const auto src_bin = torch::arange(bins, options.dtype(torch::kLong));
  // Distances from the start of the first destination bin to each source bin's ends.
  const auto src_bin_begin = (src_bin - start_bin) * bin_width;
  const auto src_bin_end = src_bin_begin + bin_width;
  const auto dst_bin_of_begin =
      torch::clamp(torch::div(src_bin_begin, dst_bin_width, "floor"), 0, dst_nbins_ - 1);
  const auto dst_bin_of_begin_center = (dst_bin_of_begin + 0.5) * dst_bin_width;
  const auto dst_bin_of_end =
      torch::clamp(torch::div(src_bin_end, dst_bin_width, "floor"), 0, dst_nbins_ - 1);
  const auto density = histogram_ / bin_width;
  const auto half = torch::full({}, static_cast<float>(dst_bin_width / 2), options);
  const auto minus_half = torch::full({}, static_cast<float>(-dst_bin_width / 2), options);

  auto norm = torch::zeros({bins}, options);
  // The part of each source bin in its first destination bin ...
  norm += get_norm(src_bin_begin - dst_bin_of_begin_center,
                   torch::ones({bins}, options) * (dst_bin_width / 2), density);
  // ... the destination bins it covers whole ...
  norm += (dst_bin_of_end - dst_bin_of_begin - 1) * get_norm(minus_half, half, density);
  // ... and the part in its last one.
  const auto dst_bin_of_end_center = dst_bin_of_end * dst_bin_width + dst_bin_width / 2;
  norm += get_norm(minus_half, src_bin_end - dst_bin_of_end_center, density);
  return norm.sum().item<double>();
}

std::pair<torch::Tensor, torch::Tensor> HistogramObserver::search_range() const {
  torch::NoGradGuard no_grad;
  const int64_t bins = options_.bins;
  const auto bin_width = (max_val_ - min_val_) / bins;
  const double total = torch::sum(histogram_).item<double>();
  const auto csum_tensor = torch::cumsum(histogram_, 0).to(torch::kCPU).contiguous();
  const float* csum = csum_tensor.data_ptr<float>();

  const double stepsize = 1e-5;  // quantile granularity
  double alpha = 0.0, beta = 1.0;
  int64_t start_bin = 0, end_bin = bins - 1;
  double norm_min = kInf;
  while (alpha < beta) {
    const double next_alpha = alpha + stepsize;
    const double next_beta = beta - stepsize;
    // The bins at the next quantile bounds (compared in float, as torch's tensors are).
    int64_t l = start_bin, r = end_bin;
    while (l < end_bin && csum[l] < static_cast<float>(next_alpha * total)) ++l;
    while (r > start_bin && csum[r] > static_cast<float>(next_beta * total)) --r;
    // Move whichever end moves further.
    int64_t next_start_bin = start_bin, next_end_bin = end_bin;
    if ((l - start_bin) > (end_bin - r)) {
      next_start_bin = l;
      alpha = next_alpha;
    } else {
      next_end_bin = r;
      beta = next_beta;
    }
    if (next_start_bin == start_bin && next_end_bin == end_bin) continue;
    const double norm = quantization_error(next_start_bin, next_end_bin);
    if (norm > norm_min) break;
    norm_min = norm;
    start_bin = next_start_bin;
    end_bin = next_end_bin;
  }
  return {min_val_ + bin_width * start_bin, min_val_ + bin_width * (end_bin + 1)};
}

QParams HistogramObserver::calculate_qparams() {
  torch::NoGradGuard no_grad;
  const float min_v = min_val_.item<float>(), max_v = max_val_.item<float>();
  if (std::isinf(min_v) && min_v > 0 && std::isinf(max_v) && max_v < 0) {
    return qparams_from_min_max(min_val_, max_val_);  // never observed: (1, 0)
  }
  const auto [lo, hi] = search_range();
  return qparams_from_min_max(lo, hi);
}

void HistogramObserver::reset() {
  torch::NoGradGuard no_grad;
  histogram_.zero_();
  min_val_.fill_(kInf);
  max_val_.fill_(-kInf);
}

}  // namespace razor::quant
