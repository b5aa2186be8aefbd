#include "components/quant/fake_quant_kernel.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "engine/error.h"

namespace razor::quant {

namespace {

struct PerTensorQParams {
  float scale, inv_scale, zero_point, quant_min, quant_max;
};

/// ATen's quantised level of one element before clamping, written as plain float arithmetic
/// so that the compiler vectorises it on any x86-64 or ARM target: v * (1 / scale) in float,
/// rounded half to even by adding and subtracting 1.5 * 2^23 (exact for |v| < 2^22; every
/// larger |v| clamps to the range either way), plus the zero point.
inline float unclamped_level(float v, const PerTensorQParams& p) {
  constexpr float kRoundHalfEven = 12582912.0f;
  return ((v * p.inv_scale + kRoundHalfEven) - kRoundHalfEven) + p.zero_point;
}

/// `level` clamped to the range and mapped back: (q - zero point) * scale rounded once to
/// float (ATen's double product of an integer and a float is exact, so it rounds to the
/// same float).
inline float dequantised(float level, const PerTensorQParams& p) {
  float q = level < p.quant_min ? p.quant_min : level;
  q = q > p.quant_max ? p.quant_max : q;
  return (q - p.zero_point) * p.scale;
}

/// One pass over [begin, end), with the in-range mask when asked.
template <bool kWithMask>
void fake_quant_block(const float* in, float* out, bool* mask, int64_t begin, int64_t end,
                      const PerTensorQParams& p) {
  for (int64_t i = begin; i < end; ++i) {
    const float q = unclamped_level(in[i], p);
    if constexpr (kWithMask) mask[i] = (q >= p.quant_min) & (q <= p.quant_max);
    out[i] = dequantised(q, p);
  }
}

/// |fake_quant(v) - v|^p of one element: p = 1 and 2 spelt out (vectorisable), any other
/// through pow.
template <int kPower>
float quant_error(float v, const PerTensorQParams& p, float power) {
  const float d = dequantised(unclamped_level(v, p), p) - v;
  if constexpr (kPower == 2) return d * d;
  if constexpr (kPower == 1) return d < 0 ? -d : d;
  return std::pow(d < 0 ? -d : d, power);
}

/// The sum of quant_error over [begin, end): eight float lanes over chunks of 1,024 elements
/// (short enough for float sums), the chunks added in double.
template <int kPower>
double quant_error_sum(const float* in, int64_t begin, int64_t end, const PerTensorQParams& p, float power) {
  constexpr int64_t kChunk = 1024, kLanes = 8;
  double total = 0;
  for (int64_t c = begin; c < end; c += kChunk) {
    const int64_t stop = std::min(end, c + kChunk);
    float lanes[kLanes] = {};
    int64_t i = c;
    for (; i + kLanes <= stop; i += kLanes) {
      for (int64_t k = 0; k < kLanes; ++k) lanes[k] += quant_error<kPower>(in[i + k], p, power);
    }
    for (; i < stop; ++i) lanes[0] += quant_error<kPower>(in[i], p, power);
    for (float lane : lanes) total += lane;
  }
  return total;
}

/// Elements per task: below this, waking the second thread costs more than it saves.
constexpr int64_t kGrain = 32768;

/// The kernel's qparams; 1 / scale is taken in float, as ATen does.
PerTensorQParams make_qparams(float scale, float zero_point, float quant_min, float quant_max) {
  return {scale, 1.0f / scale, zero_point, quant_min, quant_max};
}

/// The kernel's qparams from [1]-shaped scale (float) and zero point (integer) tensors.
PerTensorQParams qparams_of(const torch::Tensor& scale, const torch::Tensor& zero_point, int64_t quant_min,
                            int64_t quant_max) {
  RAZOR_ASSERT(scale.numel() == 1 && zero_point.numel() == 1);
  return make_qparams(scale.item<float>(), static_cast<float>(zero_point.item<int64_t>()),
                      static_cast<float>(quant_min), static_cast<float>(quant_max));
}

/// The output (x's layout) and, when `mask` is given, the in-range mask, in one pass.
torch::Tensor fake_quant_pass(const torch::Tensor& x, const PerTensorQParams& p, torch::Tensor* mask) {
  auto out = torch::empty_like(x);
  const float* in = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  bool* m = nullptr;
  if (mask) {
    *mask = torch::empty_like(x, x.options().dtype(torch::kBool));
    m = mask->data_ptr<bool>();
  }
  at::parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    if (m) {
      fake_quant_block<true>(in, o, m, begin, end, p);
    } else {
      fake_quant_block<false>(in, o, nullptr, begin, end, p);
    }
  });
  return out;
}

/// The straight-through estimator as ATen's cachemask op: the forward keeps a bool mask of the
/// in-range elements, the backward is grad * mask. The qparams travel as doubles (what custom
/// functions take); each holds a float value, so the round trip is exact.
struct FakeQuantPerTensorSte : torch::autograd::Function<FakeQuantPerTensorSte> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double scale,
                               double zero_point, double quant_min, double quant_max) {
    torch::Tensor mask;
    auto out = fake_quant_pass(x,
                               make_qparams(static_cast<float>(scale), static_cast<float>(zero_point),
                                            static_cast<float>(quant_min), static_cast<float>(quant_max)),
                               &mask);
    ctx->save_for_backward({mask});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto mask = ctx->get_saved_variables()[0];
    return {grad[0] * mask, {}, {}, {}, {}};
  }
};

}  // namespace

bool fused_fake_quant_applies(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.layout() == torch::kStrided &&
         x.is_non_overlapping_and_dense();
}

torch::Tensor fake_quantize_per_tensor(const torch::Tensor& x, const torch::Tensor& scale,
                                       const torch::Tensor& zero_point, int64_t quant_min, int64_t quant_max) {
  RAZOR_ASSERT(fused_fake_quant_applies(x));
  const PerTensorQParams p = qparams_of(scale, zero_point, quant_min, quant_max);
  if (torch::GradMode::is_enabled() && x.requires_grad()) {
    return FakeQuantPerTensorSte::apply(x, p.scale, p.zero_point, p.quant_min, p.quant_max);
  }
  return fake_quant_pass(x, p, nullptr);
}

double fake_quant_error(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& zero_point,
                        int64_t quant_min, int64_t quant_max, double power) {
  RAZOR_ASSERT(fused_fake_quant_applies(x));
  const PerTensorQParams p = qparams_of(scale, zero_point, quant_min, quant_max);
  if (x.numel() == 0) return 0;
  const float* in = x.data_ptr<float>();
  const auto pw = static_cast<float>(power);
  const double sum = at::parallel_reduce(
      0, x.numel(), kGrain, 0.0,
      [&](int64_t begin, int64_t end, double acc) {
        if (power == 2) return acc + quant_error_sum<2>(in, begin, end, p, pw);
        if (power == 1) return acc + quant_error_sum<1>(in, begin, end, p, pw);
        return acc + quant_error_sum<0>(in, begin, end, p, pw);
      },
      std::plus<double>());
  return sum / static_cast<double>(x.numel());
}

}  // namespace razor::quant
