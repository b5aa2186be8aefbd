#include "components/quant/observer.h"

#include <numeric>
#include <vector>

#include "engine/error.h"

namespace razor::quant {

Observer::Observer(const std::string& type_name, const ObserverOptions& options,
                   QScheme default_qscheme)
    : nn::Module(type_name),
      type_name_(type_name),
      dtype_(options.dtype),
      qscheme_(options.qscheme.value_or(default_qscheme)),
      reduce_range_(options.reduce_range),
      ch_axis_(options.ch_axis),
      num_channels_(options.num_channels) {
  const bool wants_channels = is_per_channel(default_qscheme);
  RAZOR_CHECK(is_per_channel(qscheme_) == wants_channels, type_name, ": qscheme ",
              to_string(qscheme_), " is not supported (only ",
              wants_channels ? "per_channel_affine and per_channel_symmetric"
                             : "per_tensor_affine and per_tensor_symmetric",
              ")");
  RAZOR_CHECK(options.eps > 0, type_name, ": eps must be positive, got ", options.eps);
  RAZOR_CHECK(num_channels_ == -1 || num_channels_ > 0, type_name,
              ": num_channels must be positive (or -1: unknown), got ", num_channels_);
  range_ =
      calculate_qmin_qmax(options.quant_min, options.quant_max, dtype_, reduce_range_, type_name);
  eps_ = register_buffer("eps", torch::full({1}, options.eps, torch::kFloat));
}

void Observer::check_reduce_range_allowed() const {
  RAZOR_CHECK(!(reduce_range_ && is_symmetric(qscheme_) && dtype_ == QDType::QUInt8), type_name_,
              ": cannot reduce the range of symmetric quint8 quantisation");
}

torch::Tensor Observer::forward(const torch::Tensor& x) {
  observe(x);
  return x;
}

QParams Observer::qparams_from_min_max(const torch::Tensor& min_val,
                                       const torch::Tensor& max_val) const {
  torch::NoGradGuard no_grad;
  const auto float_options = min_val.options().dtype(torch::kFloat);
  if (min_val.numel() == 0 || max_val.numel() == 0) {
    return {torch::ones({1}, float_options), torch::zeros({1}, float_options.dtype(torch::kLong))};
  }
  const int64_t qmin = range_.quant_min, qmax = range_.quant_max;
  const auto zeros = torch::zeros_like(min_val);
  const auto min_neg = torch::minimum(min_val, zeros);
  const auto max_pos = torch::maximum(max_val, zeros);
  // Entries never observed hold (+inf, -inf); they get torch's default (1, 0).
  const auto valid = min_val <= max_val;
  torch::Tensor scale, zero_point;
  if (is_symmetric(qscheme_)) {
    scale = torch::maximum(-min_neg, max_pos) / (static_cast<double>(qmax - qmin) / 2);
    scale = torch::maximum(scale, eps_);
    int64_t zp = 0;
    if (dtype_ == QDType::QUInt8) {
      // Python's (qmin + qmax) // 2, which floors.
      const int64_t sum = qmin + qmax;
      zp = range_.customized ? (sum >= 0 ? sum / 2 : -((-sum + 1) / 2)) : 128;
    }
    zero_point = torch::full(scale.sizes(), zp, float_options.dtype(torch::kLong));
  } else {
    scale = (max_pos - min_neg) / static_cast<double>(qmax - qmin);
    scale = torch::maximum(scale, eps_);
    zero_point = qmin - torch::round(min_neg / scale).to(torch::kLong);
    zero_point = torch::clamp(zero_point, qmin, qmax);
  }
  const auto valid_b = valid.reshape(scale.sizes());
  scale = torch::where(valid_b, scale, torch::ones_like(scale));
  zero_point = torch::where(valid_b, zero_point, torch::zeros_like(zero_point));
  if (scale.dim() == 0) scale = scale.reshape({1});
  if (zero_point.dim() == 0) zero_point = zero_point.reshape({1});
  return {scale, zero_point};
}

torch::Tensor Observer::channels_first(const torch::Tensor& x) const {
  const int64_t dim = x.dim();
  const int64_t axis = ch_axis_ < 0 ? ch_axis_ + dim : ch_axis_;
  RAZOR_CHECK(axis >= 0 && axis < std::max<int64_t>(dim, 1), type_name_, ": ch_axis ", ch_axis_,
              " is out of range for an input of ", dim, " dimension(s)");
  if (dim <= 1) return x.reshape({-1, 1});
  std::vector<int64_t> order(dim);
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[0], order[axis]);
  return x.permute(order).flatten(1);
}

void Observer::set_range(int64_t quant_min, int64_t quant_max) {
  range_ = calculate_qmin_qmax(quant_min, quant_max, dtype_, /*reduce_range=*/false, type_name_);
}

void Observer::pretty_print(std::ostream& stream) const {
  stream << type_name_ << "(dtype=" << to_string(dtype_) << ", qscheme=" << to_string(qscheme_)
         << ", quant_min=" << range_.quant_min << ", quant_max=" << range_.quant_max;
  if (per_channel()) stream << ", ch_axis=" << ch_axis_;
  if (reduce_range_) stream << ", reduce_range=true";
  stream << ")";
}

}  // namespace razor::quant
