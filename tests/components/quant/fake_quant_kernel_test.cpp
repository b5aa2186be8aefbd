// The fused per-tensor fake-quant kernel against ATen's fake_quantize_per_tensor_affine: the
// same floats bit for bit (values on rounding ties, far outside the range, every qscheme's
// range, contiguous and channels_last inputs, sizes that split across threads), and the same
// straight-through gradient; and the mean Lp error a range search compares.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "components/quant/fake_quant_kernel.h"

using namespace razor::quant;

namespace {

struct Range {
  float scale;
  int32_t zero_point;
  int64_t quant_min, quant_max;
};

// quint8 affine, qint8 symmetric, 4-bit, 16-bit activations and a reduce_range quint8.
const std::vector<Range> kRanges = {{0.0213f, 131, 0, 255}, {0.0071f, 0, -128, 127}, {0.37f, 3, 0, 15},
                                    {0.000123f, 32768, 0, 65535}, {0.05f, 64, 0, 127}};

torch::Tensor qparam_scale(const Range& r) { return torch::full({1}, r.scale, torch::kFloat); }
torch::Tensor qparam_zero_point(const Range& r) { return torch::full({1}, r.zero_point, torch::kInt); }

// Inputs that hit every branch: scaled normals spanning the range and beyond, exact rounding
// ties (k + 0.5 steps), and values far outside (clamped either way).
torch::Tensor probe_input(const Range& r, std::vector<int64_t> shape) {
  auto x = torch::randn(shape) * (r.scale * static_cast<float>(r.quant_max - r.quant_min) * 0.6f);
  auto flat = x.view(-1);
  const int64_t n = flat.numel();
  for (int64_t i = 0; i < n; i += 7) flat[i] = (static_cast<float>(i % 41) - 20.0f + 0.5f) * r.scale;
  for (int64_t i = 3; i < n; i += 101) flat[i] = (i % 2 ? 1e6f : -1e6f) * r.scale;
  return x;
}

bool bitwise_equal(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && torch::equal(a.contiguous(), b.contiguous());
}

}  // namespace

TEST_CASE("Fused fake quant equals ATen's bit for bit", "[quant]") {
  torch::manual_seed(3);
  for (const auto& r : kRanges) {
    for (const auto& shape : std::vector<std::vector<int64_t>>{{5, 3, 7, 9}, {64, 16, 28, 28}, {1000}}) {
      const auto x = probe_input(r, shape);
      const auto expected = at::fake_quantize_per_tensor_affine(x, qparam_scale(r), qparam_zero_point(r),
                                                                r.quant_min, r.quant_max);
      REQUIRE(fused_fake_quant_applies(x));
      const auto got = fake_quantize_per_tensor(x, qparam_scale(r), qparam_zero_point(r), r.quant_min, r.quant_max);
      INFO("scale " << r.scale << " zero point " << r.zero_point << " numel " << x.numel());
      CHECK(bitwise_equal(got, expected));
    }
  }
}

TEST_CASE("Fused fake quant keeps a channels_last layout and its values", "[quant]") {
  torch::manual_seed(4);
  const Range r = kRanges[0];
  const auto x = probe_input(r, {4, 8, 6, 5}).contiguous(torch::MemoryFormat::ChannelsLast);
  REQUIRE(fused_fake_quant_applies(x));
  const auto got = fake_quantize_per_tensor(x, qparam_scale(r), qparam_zero_point(r), r.quant_min, r.quant_max);
  CHECK(got.is_contiguous(torch::MemoryFormat::ChannelsLast));
  const auto expected = at::fake_quantize_per_tensor_affine(x.contiguous(), qparam_scale(r), qparam_zero_point(r),
                                                            r.quant_min, r.quant_max);
  CHECK(bitwise_equal(got, expected));
  // A strided view is not dense: the caller falls back to ATen.
  CHECK_FALSE(fused_fake_quant_applies(x.slice(3, 0, 4)));
  CHECK_FALSE(fused_fake_quant_applies(x.to(torch::kDouble)));
}

TEST_CASE("Fused fake quant gradient is ATen's straight-through estimator", "[quant]") {
  torch::manual_seed(5);
  for (const auto& r : kRanges) {
    const auto base = probe_input(r, {6, 4, 10, 10});
    const auto upstream = torch::randn(base.sizes());
    auto x1 = base.clone().requires_grad_(true);
    fake_quantize_per_tensor(x1, qparam_scale(r), qparam_zero_point(r), r.quant_min, r.quant_max)
        .backward(upstream);
    auto x2 = base.clone().requires_grad_(true);
    at::fake_quantize_per_tensor_affine(x2, qparam_scale(r), qparam_zero_point(r), r.quant_min, r.quant_max)
        .backward(upstream);
    INFO("scale " << r.scale);
    CHECK(bitwise_equal(x1.grad(), x2.grad()));
    // The mask is not all ones: the probe reaches outside the range.
    CHECK(x1.grad().eq(0).sum().item<int64_t>() > 0);
  }
}

TEST_CASE("Fused fake-quant error equals the mean Lp error of ATen's fake quant", "[quant]") {
  torch::manual_seed(5);
  for (const auto& r : kRanges) {
    // Sizes that split across threads, and ones that leave a tail past the 8 lanes.
    for (const auto& shape : std::vector<std::vector<int64_t>>{{64, 16, 28, 28}, {1000003}, {13}}) {
      const auto x = probe_input(r, shape);
      const auto quantised = at::fake_quantize_per_tensor_affine(x, qparam_scale(r), qparam_zero_point(r),
                                                                 r.quant_min, r.quant_max);
      const auto difference = (quantised.to(torch::kDouble) - x.to(torch::kDouble)).abs();
      for (double p : {1.0, 2.0, 2.4}) {
        const double expected = difference.pow(p).mean().item<double>();
        const double got = fake_quant_error(x, qparam_scale(r), qparam_zero_point(r), r.quant_min, r.quant_max, p);
        INFO("scale " << r.scale << " numel " << x.numel() << " p " << p);
        CHECK(got == Approx(expected).epsilon(1e-5));
      }
    }
  }
  CHECK(fake_quant_error(torch::empty({0}), qparam_scale(kRanges[0]), qparam_zero_point(kRanges[0]), 0, 255, 2.0) == 0);
}
