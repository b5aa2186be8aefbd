#include "components/quant/mse_observer.h"

#include <ATen/ops/fake_quantize_per_tensor_affine.h>

#include <limits>
#include <vector>

#include "components/quant/fake_quant_kernel.h"
#include "engine/error.h"

namespace razor::quant {

using detail::kInf;

MSEObserver::MSEObserver(const ObserverOptions& options, const MSEOptions& mse)
    : Observer("MSEObserver", options, QScheme::PerTensorAffine), options_(mse) {
  RAZOR_CHECK(options_.p > 0, type_name(), ": p must be positive, got ", options_.p);
  RAZOR_CHECK(options_.num_candidates >= 1, type_name(),
              ": num_candidates must be at least 1, got ", options_.num_candidates);
  min_val_ = register_buffer("min_val", torch::full({}, kInf, torch::kFloat));
  max_val_ = register_buffer("max_val", torch::full({}, -kInf, torch::kFloat));
}

void MSEObserver::observe(const torch::Tensor& x_orig) {
  if (x_orig.numel() == 0) return;
  torch::NoGradGuard no_grad;
  const auto x = x_orig.detach().to(torch::kFloat).contiguous();
  const auto [x_min, x_max] = torch::aminmax(x);
  const int64_t n = options_.num_candidates;
  // Widest first, so that argmin (the first minimum) prefers the widest among equals.
  std::vector<torch::Tensor> losses;
  losses.reserve(n);
  const auto ratios = torch::arange(n, 0, -1, x.options()) / static_cast<double>(n);
  const bool fused = fused_fake_quant_applies(x);
  for (int64_t i = 0; i < n; ++i) {
    const auto r = ratios[i];
    const QParams qp = qparams_from_min_max(x_min * r, x_max * r);
    if (fused) {
      // One pass per candidate, quantising each element as ATen does, instead of four.
      losses.push_back(torch::tensor(
          fake_quant_error(x, qp.scale, qp.zero_point, quant_min(), quant_max(), options_.p), torch::kDouble));
      continue;
    }
    const auto xq = at::fake_quantize_per_tensor_affine(x, qp.scale, qp.zero_point.to(torch::kInt),
                                                        quant_min(), quant_max());
    losses.push_back((xq - x).abs().pow(options_.p).mean().to(torch::kDouble));
  }
  const auto best = ratios.index({torch::argmin(torch::stack(losses))});
  min_val_.copy_(torch::minimum(min_val_, x_min * best));
  max_val_.copy_(torch::maximum(max_val_, x_max * best));
}

QParams MSEObserver::calculate_qparams() { return qparams_from_min_max(min_val_, max_val_); }

void MSEObserver::reset() {
  torch::NoGradGuard no_grad;
  min_val_.fill_(kInf);
  max_val_.fill_(-kInf);
}

}  // namespace razor::quant
