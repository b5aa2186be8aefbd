// Observers against the closed forms of torch.ao's _calculate_qparams (computed here in
// float, as torch computes them) and MMRazor's LSQ initialisation; the percentile and MSE
// observers against their definitions written out with plain loops.
#include <torch/torch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "components/quant/quant.h"
#include "engine/error.h"

using namespace razor;
using namespace razor::quant;

namespace {

constexpr float kEps = std::numeric_limits<float>::epsilon();

struct Ref {
  float scale;
  int64_t zero_point;
};

// torch's _calculate_qparams for one (min, max), in float.
Ref ref_qparams(float min, float max, int64_t qmin, int64_t qmax, bool symmetric, bool quint8,
                bool custom_range) {
  const float min_neg = std::min(min, 0.0f), max_pos = std::max(max, 0.0f);
  if (symmetric) {
    const float m = std::max(-min_neg, max_pos);
    const float scale = std::max(m / static_cast<float>((qmax - qmin) / 2.0), kEps);
    int64_t zp = 0;
    if (quint8) zp = custom_range ? static_cast<int64_t>(std::floor((qmin + qmax) / 2.0)) : 128;
    return {scale, zp};
  }
  const float scale = std::max((max_pos - min_neg) / static_cast<float>(qmax - qmin), kEps);
  int64_t zp = qmin - static_cast<int64_t>(std::nearbyint(min_neg / scale));
  zp = std::min(std::max(zp, qmin), qmax);
  return {scale, zp};
}

void check_qparams(const QParams& qp, const std::vector<Ref>& expected) {
  REQUIRE(qp.scale.numel() == static_cast<int64_t>(expected.size()));
  REQUIRE(qp.zero_point.numel() == static_cast<int64_t>(expected.size()));
  CHECK(qp.scale.scalar_type() == torch::kFloat);
  CHECK(qp.zero_point.scalar_type() == torch::kLong);
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("entry " << i);
    CHECK(qp.scale[i].item<float>() == Approx(expected[i].scale).epsilon(1e-6));
    CHECK(qp.zero_point[i].item<int64_t>() == expected[i].zero_point);
  }
}

torch::Tensor values(std::vector<float> v) { return torch::tensor(v); }

}  // namespace

TEST_CASE("Ranges are derived as torch's calculate_qmin_qmax", "[quant]") {
  auto r = calculate_qmin_qmax({}, {}, QDType::QUInt8, false);
  CHECK((r.quant_min == 0 && r.quant_max == 255 && !r.customized));
  r = calculate_qmin_qmax({}, {}, QDType::QInt8, false);
  CHECK((r.quant_min == -128 && r.quant_max == 127));
  r = calculate_qmin_qmax({}, {}, QDType::QUInt8, true);
  CHECK((r.quant_min == 0 && r.quant_max == 127));
  r = calculate_qmin_qmax({}, {}, QDType::QInt8, true);
  CHECK((r.quant_min == -64 && r.quant_max == 63));
  // A custom range is halved by floor division: -127 // 2 = -64.
  r = calculate_qmin_qmax(-127, 127, QDType::QInt8, true);
  CHECK((r.quant_min == -64 && r.quant_max == 63 && r.customized));
  r = calculate_qmin_qmax(-8, 7, QDType::QInt8, false);
  CHECK((r.quant_min == -8 && r.quant_max == 7 && r.customized));
  CHECK_THROWS_WITH(calculate_qmin_qmax(1, 7, QDType::QInt8, false), Catch::Contains("include 0"));
  CHECK_THROWS_WITH(calculate_qmin_qmax(0, 0, QDType::QUInt8, false),
                    Catch::Contains("strictly less"));
  CHECK_THROWS_WITH(calculate_qmin_qmax(0, {}, QDType::QUInt8, false),
                    Catch::Contains("go together"));
  CHECK(bit_range(QDType::QUInt8, 4, false) == std::make_pair<int64_t, int64_t>(0, 15));
  CHECK(bit_range(QDType::QInt8, 4, false) == std::make_pair<int64_t, int64_t>(-8, 7));
  CHECK(bit_range(QDType::QInt8, 4, true) == std::make_pair<int64_t, int64_t>(-7, 7));
  CHECK(bit_range(QDType::QUInt8, 16, false) == std::make_pair<int64_t, int64_t>(0, 65535));
}

TEST_CASE("MinMaxObserver: running min/max and torch's scale and zero point", "[quant]") {
  const auto a = values({-1.5f, 0.25f, 3.0f, 2.0f});
  const auto b = values({-2.0f, 1.0f});
  struct Case {
    const char* name;
    ObserverOptions options;
    int64_t qmin, qmax;
    bool symmetric, quint8, custom;
  };
  const std::vector<Case> cases = {
      {"affine quint8", ObserverOptions(), 0, 255, false, true, false},
      {"affine qint8", ObserverOptions().with_dtype(QDType::QInt8), -128, 127, false, false, false},
      {"symmetric quint8 (zero point 128)",
       ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric), 0, 255, true, true, false},
      {"symmetric quint8, custom range (midpoint 127)",
       ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric).with_range(0, 255), 0, 255, true,
       true, true},
      {"symmetric qint8",
       ObserverOptions().with_dtype(QDType::QInt8).with_qscheme(QScheme::PerTensorSymmetric), -128,
       127, true, false, false},
      {"symmetric qint8, symmetric range",
       ObserverOptions()
           .with_dtype(QDType::QInt8)
           .with_qscheme(QScheme::PerTensorSymmetric)
           .with_range(-127, 127),
       -127, 127, true, false, true},
      {"affine quint8, reduce_range", ObserverOptions().with_reduce_range(true), 0, 127, false,
       true, false},
      {"affine qint8, reduce_range",
       ObserverOptions().with_dtype(QDType::QInt8).with_reduce_range(true), -64, 63, false, false,
       false},
      {"symmetric qint8, reduce_range",
       ObserverOptions()
           .with_dtype(QDType::QInt8)
           .with_qscheme(QScheme::PerTensorSymmetric)
           .with_reduce_range(true),
       -64, 63, true, false, false},
      {"4-bit affine quint8", ObserverOptions().with_range(0, 15), 0, 15, false, true, true},
      {"4-bit affine qint8", ObserverOptions().with_dtype(QDType::QInt8).with_range(-8, 7), -8, 7,
       false, false, true},
      {"4-bit symmetric quint8",
       ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric).with_range(0, 15), 0, 15, true,
       true, true},
      {"4-bit symmetric qint8",
       ObserverOptions()
           .with_dtype(QDType::QInt8)
           .with_qscheme(QScheme::PerTensorSymmetric)
           .with_range(-7, 7),
       -7, 7, true, false, true},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    MinMaxObserver observer(c.options);
    CHECK(observer.quant_min() == c.qmin);
    CHECK(observer.quant_max() == c.qmax);
    check_qparams(observer.calculate_qparams(), {{1.0f, 0}});  // nothing observed yet
    observer(a);                                               // forward observes ...
    CHECK(torch::equal(observer(b), b));                       // ... and returns its input
    CHECK(observer.min_val().item<float>() == -2.0f);
    CHECK(observer.max_val().item<float>() == 3.0f);
    check_qparams(observer.calculate_qparams(),
                  {ref_qparams(-2.0f, 3.0f, c.qmin, c.qmax, c.symmetric, c.quint8, c.custom)});
  }
  // One-sided data: the range is widened to include 0.
  MinMaxObserver positive;
  positive.observe(values({0.5f, 2.0f}));
  check_qparams(positive.calculate_qparams(),
                {ref_qparams(0.5f, 2.0f, 0, 255, false, true, false)});
  CHECK(positive.calculate_qparams().zero_point.item<int64_t>() == 0);
  positive.reset();
  CHECK(std::isinf(positive.min_val().item<float>()));
  check_qparams(positive.calculate_qparams(), {{1.0f, 0}});
}

TEST_CASE("Observers clamp the scale to eps on an all-zero input", "[quant]") {
  const auto zeros = torch::zeros({3, 4});
  MinMaxObserver affine;
  affine.observe(zeros);
  check_qparams(affine.calculate_qparams(), {{kEps, 0}});
  MinMaxObserver symmetric(ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric));
  symmetric.observe(zeros);
  check_qparams(symmetric.calculate_qparams(), {{kEps, 128}});
  MinMaxObserver custom_eps(ObserverOptions().with_eps(1e-3));
  custom_eps.observe(zeros);
  CHECK(custom_eps.calculate_qparams().scale.item<float>() == Approx(1e-3).epsilon(1e-6));
  PerChannelMinMaxObserver per_channel(
      ObserverOptions().with_dtype(QDType::QInt8).with_qscheme(QScheme::PerChannelSymmetric));
  per_channel.observe(zeros);
  check_qparams(per_channel.calculate_qparams(), {{kEps, 0}, {kEps, 0}, {kEps, 0}});
}

TEST_CASE("Observer options are validated as torch's asserts", "[quant]") {
  CHECK_THROWS_WITH(
      MinMaxObserver(
          ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric).with_reduce_range(true)),
      Catch::Contains("cannot reduce the range of symmetric quint8"));
  CHECK_THROWS_WITH(MinMaxObserver(ObserverOptions().with_qscheme(QScheme::PerChannelAffine)),
                    Catch::Contains("MinMaxObserver: qscheme per_channel_affine is not supported"));
  CHECK_THROWS_WITH(
      PerChannelMinMaxObserver(ObserverOptions().with_qscheme(QScheme::PerTensorAffine)),
      Catch::Contains("is not supported"));
  CHECK_THROWS_WITH(MovingAverageMinMaxObserver(ObserverOptions(), 1.5),
                    Catch::Contains("averaging_constant"));
  CHECK_THROWS_AS(MinMaxObserver(ObserverOptions().with_range(2, 9)), Error);
}

TEST_CASE("MovingAverageMinMaxObserver follows m <- m + c (batch - m)", "[quant]") {
  MovingAverageMinMaxObserver observer(ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric),
                                       0.1);
  observer.observe(values({-1.0f, 0.5f, 2.0f}));  // the first batch is taken as is
  CHECK(observer.min_val().item<float>() == -1.0f);
  CHECK(observer.max_val().item<float>() == 2.0f);
  observer.observe(values({-3.0f, 4.0f}));
  const float min = -1.0f + 0.1f * (-3.0f - -1.0f), max = 2.0f + 0.1f * (4.0f - 2.0f);
  CHECK(observer.min_val().item<float>() == Approx(min).epsilon(1e-6));
  CHECK(observer.max_val().item<float>() == Approx(max).epsilon(1e-6));
  check_qparams(observer.calculate_qparams(), {ref_qparams(min, max, 0, 255, true, true, false)});
  observer.reset();
  observer.observe(values({5.0f}));
  CHECK(observer.min_val().item<float>() == 5.0f);  // first batch again after a reset
}

TEST_CASE("Per-channel observers: min/max per channel along ch_axis", "[quant]") {
  // 3 channels along axis 1 of a [2, 3, 2] tensor; channel 2 is all zero.
  auto x = torch::zeros({2, 3, 2});
  x[0][0] = values({1.0f, -2.0f});
  x[0][1] = values({0.5f, 4.0f});
  x[1][0] = values({-3.0f, 1.0f});
  x[1][1] = values({2.0f, 1.5f});
  std::vector<float> mins, maxs;
  for (int64_t c = 0; c < 3; ++c) {
    const auto ch = x.select(1, c);
    mins.push_back(ch.min().item<float>());
    maxs.push_back(ch.max().item<float>());
  }
  const auto options = ObserverOptions().with_dtype(QDType::QInt8).with_ch_axis(1);
  for (const bool symmetric : {false, true}) {
    INFO((symmetric ? "symmetric" : "affine"));
    auto o = options;
    o.with_qscheme(symmetric ? QScheme::PerChannelSymmetric : QScheme::PerChannelAffine);
    PerChannelMinMaxObserver observer(o);
    CHECK(observer.min_val().numel() == 0);  // torch's: empty until observed
    check_qparams(observer.calculate_qparams(), {{1.0f, 0}});
    observer.observe(x);
    std::vector<Ref> expected;
    for (int c = 0; c < 3; ++c) {
      CHECK(observer.min_val()[c].item<float>() == mins[c]);
      CHECK(observer.max_val()[c].item<float>() == maxs[c]);
      expected.push_back(ref_qparams(mins[c], maxs[c], -128, 127, symmetric, false, false));
    }
    check_qparams(observer.calculate_qparams(), expected);
    // A second observation takes the running extremes per channel.
    observer.observe(torch::full({1, 3, 1}, -10.0f));
    CHECK(observer.min_val()[2].item<float>() == -10.0f);
    CHECK(observer.max_val()[2].item<float>() == 0.0f);
  }
  // Negative ch_axis counts from the end: a [4, 3] tensor, channels along the last axis.
  PerChannelMinMaxObserver last(ObserverOptions().with_ch_axis(-1));
  const auto w = torch::arange(12, torch::kFloat).reshape({4, 3}) - 5;
  last.observe(w);
  CHECK(torch::equal(last.min_val(), std::get<0>(w.min(0))));
  CHECK(torch::equal(last.max_val(), std::get<0>(w.max(0))));
  check_qparams(last.calculate_qparams(), {ref_qparams(-5, 4, 0, 255, false, true, false),
                                           ref_qparams(-4, 5, 0, 255, false, true, false),
                                           ref_qparams(-3, 6, 0, 255, false, true, false)});
}

TEST_CASE("Per-channel observers with num_channels have their final shape at once", "[quant]") {
  const auto w = torch::tensor({-1.0f, 2.0f, 0.5f, -0.25f, 3.0f, 1.0f}).reshape({3, 2});
  PerChannelMinMaxObserver lazy(
      ObserverOptions().with_qscheme(QScheme::PerChannelSymmetric).with_dtype(QDType::QInt8));
  PerChannelMinMaxObserver eager(ObserverOptions()
                                     .with_qscheme(QScheme::PerChannelSymmetric)
                                     .with_dtype(QDType::QInt8)
                                     .with_num_channels(3));
  CHECK(eager.min_val().sizes() == torch::IntArrayRef({3}));
  const auto before = eager.calculate_qparams();
  CHECK(torch::equal(before.scale, torch::ones({3})));
  CHECK(torch::equal(before.zero_point, torch::zeros({3}, torch::kLong)));
  lazy.observe(w);
  eager.observe(w);
  CHECK(torch::equal(lazy.min_val(), eager.min_val()));
  CHECK(torch::equal(lazy.calculate_qparams().scale, eager.calculate_qparams().scale));
  CHECK_THROWS_WITH(eager.observe(torch::ones({4, 2})), Catch::Contains("expected 3 channels"));
  eager.reset();
  CHECK(eager.min_val().sizes() == torch::IntArrayRef({3}));
  CHECK(std::isinf(eager.min_val()[0].item<float>()));
  lazy.reset();
  CHECK(lazy.min_val().numel() == 0);
}

TEST_CASE("MovingAveragePerChannelMinMaxObserver averages each channel", "[quant]") {
  MovingAveragePerChannelMinMaxObserver observer(ObserverOptions(), 0.25);
  observer.observe(torch::tensor({-1.0f, 1.0f, 0.0f, 4.0f}).reshape({2, 2}));
  observer.observe(torch::tensor({-3.0f, 3.0f, -2.0f, 0.0f}).reshape({2, 2}));
  const std::vector<float> mins = {-1.0f + 0.25f * (-3.0f + 1.0f), 0.0f + 0.25f * (-2.0f - 0.0f)};
  const std::vector<float> maxs = {1.0f + 0.25f * (3.0f - 1.0f), 4.0f + 0.25f * (0.0f - 4.0f)};
  std::vector<Ref> expected;
  for (int c = 0; c < 2; ++c) {
    CHECK(observer.min_val()[c].item<float>() == Approx(mins[c]).epsilon(1e-6));
    CHECK(observer.max_val()[c].item<float>() == Approx(maxs[c]).epsilon(1e-6));
    expected.push_back(ref_qparams(mins[c], maxs[c], 0, 255, false, true, false));
  }
  check_qparams(observer.calculate_qparams(), expected);
}

TEST_CASE("LSQ observers: scale 2 mean|x| / sqrt(quant_max), zero point from min/max", "[quant]") {
  // MMRazor's tests/test_models/test_observers/test_lsq_observer.py.
  LSQObserver observer(
      ObserverOptions().with_qscheme(QScheme::PerTensorSymmetric).with_range(0, 255));
  check_qparams(observer.calculate_qparams(), {{1.0f, 0}});  // nothing observed
  observer.observe(torch::ones({10}));
  check_qparams(observer.calculate_qparams(), {{2.0f / std::sqrt(255.0f), 127}});

  LSQPerChannelObserver per_channel(ObserverOptions()
                                        .with_dtype(QDType::QInt8)
                                        .with_qscheme(QScheme::PerChannelSymmetric)
                                        .with_range(-127, 127));
  auto x = torch::ones({2, 10});
  x[0] -= 1;
  per_channel.observe(x);
  // MMRazor's scale for an all-zero channel is 0 (no eps): LearnableFakeQuantize clamps it.
  check_qparams(per_channel.calculate_qparams(), {{0.0f, 0}, {2.0f / std::sqrt(127.0f), 0}});

  // mean|x| of the latest observation, with an affine zero point from the running min/max.
  LSQObserver affine(ObserverOptions().with_range(0, 15));
  affine.observe(values({-1.0f, 3.0f}));
  affine.observe(values({-0.5f, 0.5f, 2.0f, -2.0f}));
  const float norm = (0.5f + 0.5f + 2.0f + 2.0f) / 4;
  CHECK(affine.tensor_norm().item<float>() == Approx(norm));
  const auto qp = affine.calculate_qparams();
  CHECK(qp.scale.item<float>() == Approx(2 * norm / std::sqrt(15.0f)).epsilon(1e-6));
  CHECK(qp.zero_point.item<int64_t>() ==
        ref_qparams(-2.0f, 3.0f, 0, 15, false, true, true).zero_point);
}

TEST_CASE("PercentileObserver takes interpolated percentiles with a moving average", "[quant]") {
  // 0..999 in a scrambled order: the q-quantile is q * 999 exactly.
  auto x = (torch::arange(1000, torch::kFloat) * 7).remainder(1000);
  PercentileObserver observer(
      ObserverOptions(), PercentileOptions().with_percentile(99.0).with_averaging_constant(0.5));
  observer.observe(x);
  CHECK(observer.min_val().item<float>() == Approx(0.01 * 999).epsilon(1e-6));
  CHECK(observer.max_val().item<float>() == Approx(0.99 * 999).epsilon(1e-6));
  // Second batch: 0..99 -> percentiles 0.99 and 98.01, averaged in with c = 0.5.
  observer.observe(torch::arange(100, torch::kFloat).flip(0));
  const float min = 9.99f + 0.5f * (0.99f - 9.99f), max = 989.01f + 0.5f * (98.01f - 989.01f);
  CHECK(observer.min_val().item<float>() == Approx(min).epsilon(1e-5));
  CHECK(observer.max_val().item<float>() == Approx(max).epsilon(1e-5));
  check_qparams(observer.calculate_qparams(),
                {ref_qparams(observer.min_val().item<float>(), observer.max_val().item<float>(), 0,
                             255, false, true, false)});
  // Percentile 100 is min/max.
  PercentileObserver full(ObserverOptions(), PercentileOptions().with_percentile(100));
  full.observe(values({3.0f, -1.0f, 2.0f}));
  CHECK(full.min_val().item<float>() == -1.0f);
  CHECK(full.max_val().item<float>() == 3.0f);
  CHECK_THROWS_WITH(PercentileObserver(ObserverOptions(), PercentileOptions().with_percentile(40)),
                    Catch::Contains("percentile must be in (50, 100]"));
}

TEST_CASE("MSEObserver picks the candidate range with the least Lp error", "[quant]") {
  torch::manual_seed(3);
  // Mostly small values and two outliers: clipping pays at 4 bits.
  auto x = torch::randn({400});
  x[7] = 9.0f;
  x[11] = -6.0f;
  const int64_t qmin = 0, qmax = 15, n = 50;
  MSEObserver observer(ObserverOptions().with_range(qmin, qmax),
                       MSEOptions().with_num_candidates(n).with_p(2.0));
  observer.observe(x);

  // The search written out: fake-quantise every element with each candidate's qparams.
  const auto data = x.contiguous();
  const float* v = data.data_ptr<float>();
  const float x_min = data.min().item<float>(), x_max = data.max().item<float>();
  double best_loss = std::numeric_limits<double>::infinity();
  float best_r = 1;
  for (int64_t k = n; k >= 1; --k) {
    const float r = static_cast<float>(k) / static_cast<float>(n);
    const Ref q = ref_qparams(x_min * r, x_max * r, qmin, qmax, false, true, true);
    const float inv = 1.0f / q.scale;
    double loss = 0;
    for (int64_t i = 0; i < data.numel(); ++i) {
      const double qv = std::nearbyint(v[i] * inv) + q.zero_point;
      const double y =
          (std::min<double>(std::max<double>(qv, qmin), qmax) - q.zero_point) * q.scale;
      loss += (y - v[i]) * (y - v[i]);
    }
    loss /= static_cast<double>(data.numel());
    if (loss < best_loss) {
      best_loss = loss;
      best_r = r;
    }
  }
  INFO("best ratio " << best_r);
  CHECK(best_r < 1.0f);  // the outliers are clipped
  CHECK(observer.min_val().item<float>() == Approx(x_min * best_r).epsilon(1e-6));
  CHECK(observer.max_val().item<float>() == Approx(x_max * best_r).epsilon(1e-6));
  check_qparams(observer.calculate_qparams(),
                {ref_qparams(x_min * best_r, x_max * best_r, qmin, qmax, false, true, true)});

  // Later observations keep the running min/max of the per-observation optima.
  const float old_max = observer.max_val().item<float>();
  observer.observe(values({0.0f, 0.01f}));
  CHECK(observer.max_val().item<float>() == old_max);
}
