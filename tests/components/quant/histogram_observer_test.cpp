// HistogramObserver against a direct transcription of torch.ao's HistogramObserver
// (torch/ao/quantization/observer.py: forward, _adjust_min_max, _combine_histograms,
// _non_linear_param_search, _compute_quantization_error) written here with plain loops over
// std::vector, independent of the tensor code it checks.
#include <torch/torch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "components/quant/quant.h"

using namespace razor::quant;

namespace {

// torch.histc on CPU: bins of equal width over [lo, hi] (the last one closed), positions
// computed in float as ATen's kernel does; values outside are dropped.
std::vector<double> histc(const std::vector<float>& x, int64_t bins, float lo, float hi) {
  std::vector<double> out(bins, 0.0);
  for (const float v : x) {
    if (!(v >= lo && v <= hi)) continue;
    auto pos = static_cast<int64_t>((v - lo) * static_cast<float>(bins) / (hi - lo));
    if (pos == bins) pos -= 1;
    out[pos] += 1;
  }
  return out;
}

struct RefHistogram {
  int64_t bins, upsample;
  int64_t dst_nbins = 256;
  std::vector<double> hist;
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();

  void observe(const std::vector<float>& x) {
    const float x_min = *std::min_element(x.begin(), x.end());
    const float x_max = *std::max_element(x.begin(), x.end());
    if (std::isinf(min) || min == max || max - min < 1e-6f) {
      min = x_min;
      max = x_max;
      hist = histc(x, bins, min, max);
      return;
    }
    const float cmin = std::min(x_min, min);
    float cmax = std::max(x_max, max);
    const float width = max - min;
    const auto down = static_cast<int64_t>(std::ceil(((cmax - cmin) / width) * upsample));
    const float e =
        static_cast<float>(static_cast<double>(down) / upsample) * width - (cmax - cmin);
    const auto start = static_cast<int64_t>(std::nearbyint((min - cmin) / width * bins * upsample));
    cmax = cmax + e;
    std::vector<double> combined = histc(x, bins, cmin, cmax);
    if (!(cmin == min && cmax == max)) {
      // Coarse bin i of the new range covers fine cells [i * down, (i + 1) * down); fine cell
      // f holds old bin (f - start) / upsample's count; each fine cell is 1/upsample of it.
      for (int64_t i = 0; i < bins; ++i) {
        double sum = 0;
        for (int64_t f = i * down; f < (i + 1) * down; ++f) {
          const int64_t j = f - start;
          if (j >= 0 && j < bins * upsample) sum += hist[j / upsample];
        }
        combined[i] += sum / static_cast<double>(upsample);
      }
    } else {
      for (int64_t i = 0; i < bins; ++i) combined[i] += hist[i];
    }
    hist = combined;
    min = cmin;
    max = cmax;
  }

  static double norm(double begin, double end, double density) {
    return density * (end * end * end - begin * begin * begin) / 3;
  }

  double error(int64_t start_bin, int64_t end_bin) const {
    const double bin_width = (static_cast<double>(max) - static_cast<double>(min)) / bins;
    const double dst = bin_width * (end_bin - start_bin + 1) / dst_nbins;
    if (dst == 0.0) return 0.0;
    double total = 0;
    for (int64_t i = 0; i < bins; ++i) {
      const double begin = (i - start_bin) * bin_width, end = begin + bin_width;
      const double first = std::clamp(std::floor(begin / dst), 0.0, double(dst_nbins - 1));
      const double last = std::clamp(std::floor(end / dst), 0.0, double(dst_nbins - 1));
      const double density = hist[i] / bin_width;
      total += norm(begin - (first + 0.5) * dst, dst / 2, density);
      total += (last - first - 1) * norm(-dst / 2, dst / 2, density);
      total += norm(-dst / 2, end - (last * dst + dst / 2), density);
    }
    return total;
  }

  std::pair<int64_t, int64_t> search() const {
    double total = 0;
    std::vector<double> csum(bins);
    for (int64_t i = 0; i < bins; ++i) csum[i] = (total += hist[i]);
    double alpha = 0, beta = 1, norm_min = std::numeric_limits<double>::infinity();
    int64_t start = 0, end = bins - 1;
    while (alpha < beta) {
      const double next_alpha = alpha + 1e-5, next_beta = beta - 1e-5;
      int64_t l = start, r = end;
      while (l < end && csum[l] < static_cast<float>(next_alpha * total)) ++l;
      while (r > start && csum[r] > static_cast<float>(next_beta * total)) --r;
      int64_t next_start = start, next_end = end;
      if (l - start > end - r) {
        next_start = l;
        alpha = next_alpha;
      } else {
        next_end = r;
        beta = next_beta;
      }
      if (next_start == start && next_end == end) continue;
      const double e = error(next_start, next_end);
      if (e > norm_min) break;
      norm_min = e;
      start = next_start;
      end = next_end;
    }
    return {start, end};
  }
};

std::vector<float> to_vector(const torch::Tensor& t) {
  const auto c = t.contiguous().to(torch::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

TEST_CASE("HistogramObserver equals a transcription of torch's algorithm", "[quant]") {
  torch::manual_seed(7);
  // Three observations: a first histogram, a wider one with an outlier (the histograms are
  // combined on a common grid), and one inside the range (histograms simply added).
  auto a = torch::randn({3000});
  auto b = torch::randn({2000}) * 1.5 + 0.5;
  b[17] = 14.0f;
  auto c = torch::rand({1000}) * 4 - 2;
  const int64_t bins = 512, upsample = 16;
  for (const bool symmetric : {false, true}) {
    INFO((symmetric ? "symmetric" : "affine"));
    auto options = ObserverOptions();
    if (symmetric) options.with_dtype(QDType::QInt8).with_qscheme(QScheme::PerTensorSymmetric);
    HistogramObserver observer(options,
                               HistogramOptions().with_bins(bins).with_upsample_rate(upsample));
    RefHistogram ref{bins, upsample};
    for (const auto& x : {a, b, c}) {
      observer(x);
      ref.observe(to_vector(x));
      CHECK(observer.min_val().item<float>() == ref.min);
      CHECK(observer.max_val().item<float>() == ref.max);
      const auto hist = to_vector(observer.histogram());
      double max_diff = 0;
      for (int64_t i = 0; i < bins; ++i)
        max_diff = std::max(max_diff, std::abs(hist[i] - ref.hist[i]));
      CHECK(max_diff < 1e-3);
    }
    const auto [start, end] = ref.search();
    INFO("bins " << start << ".." << end);
    CHECK(end < bins - 1);  // the outlier at 14 is clipped
    const float bin_width = (ref.max - ref.min) / static_cast<float>(bins);
    const float lo = ref.min + bin_width * static_cast<float>(start);
    const float hi = ref.min + bin_width * static_cast<float>(end + 1);
    const auto [got_lo, got_hi] = observer.search_range();
    CHECK(got_lo.item<float>() == Approx(lo).epsilon(1e-6));
    CHECK(got_hi.item<float>() == Approx(hi).epsilon(1e-6));
    CHECK(observer.quantization_error(start, end) == Approx(ref.error(start, end)).epsilon(1e-4));

    // Scale and zero point of that range, as MinMaxObserver's.
    const auto qp = observer.calculate_qparams();
    const float min_neg = std::min(lo, 0.0f), max_pos = std::max(hi, 0.0f);
    if (symmetric) {
      CHECK(qp.scale.item<float>() == Approx(std::max(-min_neg, max_pos) / 127.5f).epsilon(1e-6));
      CHECK(qp.zero_point.item<int64_t>() == 0);
    } else {
      const float scale = (max_pos - min_neg) / 255.0f;
      CHECK(qp.scale.item<float>() == Approx(scale).epsilon(1e-6));
      CHECK(qp.zero_point.item<int64_t>() ==
            -static_cast<int64_t>(std::nearbyint(min_neg / scale)));
    }
  }
}

TEST_CASE("HistogramObserver edge cases", "[quant]") {
  HistogramObserver observer(ObserverOptions(), HistogramOptions().with_bins(64));
  const auto unobserved = observer.calculate_qparams();
  CHECK(unobserved.scale.item<float>() == 1.0f);
  CHECK(unobserved.zero_point.item<int64_t>() == 0);
  // Infinite values are ignored; a constant batch then restarts the histogram.
  const float inf = std::numeric_limits<float>::infinity();
  observer(torch::tensor({1.0f, 2.0f, inf, -inf, 3.0f}));
  CHECK(observer.min_val().item<float>() == 1.0f);
  CHECK(observer.max_val().item<float>() == 3.0f);
  CHECK(observer.histogram().sum().item<float>() == 3.0f);
  observer(torch::full({4}, inf));  // nothing finite: no change
  CHECK(observer.histogram().sum().item<float>() == 3.0f);
  observer.reset();
  CHECK(observer.histogram().sum().item<float>() == 0.0f);
  observer(torch::full({5}, 2.0f));
  observer(torch::tensor({0.0f, 4.0f}));  // min == max before: the histogram restarts
  CHECK(observer.min_val().item<float>() == 0.0f);
  CHECK(observer.histogram().sum().item<float>() == 2.0f);
}
