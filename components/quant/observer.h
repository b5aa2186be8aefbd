#pragma once
// Observers watch the tensors that flow through a quantisation point and turn what they saw
// into a scale and a zero point. An observer is a razor module whose forward observes its
// input and returns it unchanged (as torch.ao's observers are nn.Modules); all of its state
// lives in buffers, so it lands in checkpoints.
#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <string>

#include "components/nn/module.h"
#include "components/quant/qscheme.h"

namespace razor::quant {

namespace detail {
/// The "never observed" values of running minima (+inf) and maxima (-inf).
inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace detail

/// A scale (float) and a zero point (int64), shape [1] per tensor or [C] per channel.
struct QParams {
  torch::Tensor scale;
  torch::Tensor zero_point;
};

/// What every uniform observer takes (torch's UniformQuantizationObserverBase arguments).
struct ObserverOptions {
  QDType dtype = QDType::QUInt8;
  /// Unset: the observer's default (per_tensor_affine, or per_channel_affine for the
  /// per-channel observers).
  std::optional<QScheme> qscheme;
  /// Halves the range (torch's reduce_range, for x86 kernels that overflow otherwise).
  bool reduce_range = false;
  /// Both or neither: a custom range (e.g. a 4-bit one); neither is the dtype's 8-bit range.
  std::optional<int64_t> quant_min;
  std::optional<int64_t> quant_max;
  /// Lower bound of the scale (torch.finfo(torch.float32).eps).
  double eps = std::numeric_limits<float>::epsilon();
  /// Per-channel observers: the channel dimension (negative counts from the end).
  int64_t ch_axis = 0;
  /// Per-channel observers: the number of channels when known at construction (a weight's
  /// out_channels). The state then has its final shape from the start, so a checkpoint of an
  /// observed model loads into a freshly built one; -1 leaves it empty until the first
  /// observation, as in torch.
  int64_t num_channels = -1;

  // clang-format off
  ObserverOptions& with_dtype(QDType v) { dtype = v; return *this; }
  ObserverOptions& with_qscheme(QScheme v) { qscheme = v; return *this; }
  ObserverOptions& with_reduce_range(bool v) { reduce_range = v; return *this; }
  ObserverOptions& with_range(int64_t lo, int64_t hi) {
    quant_min = lo; quant_max = hi; return *this;
  }
  ObserverOptions& with_eps(double v) { eps = v; return *this; }
  ObserverOptions& with_ch_axis(int64_t v) { ch_axis = v; return *this; }
  ObserverOptions& with_num_channels(int64_t v) { num_channels = v; return *this; }
  // clang-format on
};

/// The base of every observer. Subclasses implement observe(), calculate_qparams() and
/// reset(). Construction validates the options (config errors, as torch's asserts).
class Observer : public nn::Module {
 public:
  /// `default_qscheme` fills an unset options.qscheme and says which kind (per tensor or per
  /// channel) the subclass is: a qscheme of the other kind is a config error naming
  /// `type_name`, as is a bad range (torch's asserts).
  Observer(const std::string& type_name, const ObserverOptions& options, QScheme default_qscheme);

  /// Updates the statistics with `x` (detached; an empty tensor is ignored).
  virtual void observe(const torch::Tensor& x) = 0;
  /// Scale and zero point from the statistics; (1, 0) before anything was observed.
  virtual QParams calculate_qparams() = 0;
  /// Forgets the statistics (torch's reset_min_max_vals).
  virtual void reset() = 0;

  const std::string& type_name() const { return type_name_; }
  QDType dtype() const { return dtype_; }
  QScheme qscheme() const { return qscheme_; }
  bool per_channel() const { return is_per_channel(qscheme_); }
  /// The channel axis as given (may be negative); -1 for per-tensor observers, as torch.
  int64_t ch_axis() const { return per_channel() ? ch_axis_ : -1; }
  int64_t num_channels() const { return num_channels_; }
  bool reduce_range() const { return reduce_range_; }
  const QuantRange& range() const { return range_; }
  /// A new integer range (mixed precision changes a weight's bits); validated as at
  /// construction. The statistics stay: calculate_qparams() uses the new range.
  void set_range(int64_t quant_min, int64_t quant_max);
  int64_t quant_min() const { return range_.quant_min; }
  int64_t quant_max() const { return range_.quant_max; }
  const torch::Tensor& eps() const { return eps_; }

  void pretty_print(std::ostream& stream) const override;

 protected:
  torch::Tensor forward(const torch::Tensor& x) override;

  /// torch's _calculate_qparams for running min/max values (0-d per tensor, [C] per channel):
  /// symmetric scale = max(-min_neg, max_pos) / ((qmax - qmin) / 2) and zero point 0 (qint8),
  /// 128 (quint8) or the range's rounded-down midpoint (quint8 with a custom range); affine
  /// scale = (max_pos - min_neg) / (qmax - qmin) and zero point clamp(qmin - round(min_neg /
  /// scale)); scale >= eps. Entries never observed (min = +inf, max = -inf) and empty inputs
  /// give (1, 0). Per-tensor results have shape [1]. No host synchronisation.
  QParams qparams_from_min_max(const torch::Tensor& min_val, const torch::Tensor& max_val) const;

  /// torch's min/max observers refuse reduce_range with symmetric quint8 (a config error).
  void check_reduce_range_allowed() const;

  /// `x` with the channel axis first, flattened to [C, N] (torch's per-channel layout).
  torch::Tensor channels_first(const torch::Tensor& x) const;

  torch::Tensor eps_;

 private:
  std::string type_name_;
  QDType dtype_;
  QScheme qscheme_;
  bool reduce_range_;
  int64_t ch_axis_;
  int64_t num_channels_;
  QuantRange range_;
};

}  // namespace razor::quant
