#pragma once
// MMRazor's LearnableFakeQuantize (mmrazor/models/fake_quants/lsq.py): LSQ, with a learnable
// scale, and LSQ+ with a learnable zero point too, on ATen's
// _fake_quantize_learnable_per_tensor_affine / _fake_quantize_learnable_per_channel_affine.
#include "components/quant/fake_quantize.h"

namespace razor::quant {

struct LearnableFakeQuantizeOptions {
  /// Initial scale and zero point (replaced by the observer's while it is enabled).
  double scale = 1.0;
  double zero_point = 0.0;
  /// Scales the qparams' gradients by 1 / sqrt(x.numel() * quant_max) (LSQ's g; numel counts
  /// the batch dimension too, as MMRazor does).
  bool use_grad_scaling = true;
  /// LSQ+: the zero point is a parameter too (else a buffer).
  bool zero_point_trainable = false;

  using Self = LearnableFakeQuantizeOptions;
  // clang-format off
  Self& with_scale(double v) { scale = v; return *this; }
  Self& with_zero_point(double v) { zero_point = v; return *this; }
  Self& with_use_grad_scaling(bool v) { use_grad_scaling = v; return *this; }
  Self& with_zero_point_trainable(bool v) { zero_point_trainable = v; return *this; }
  // clang-format on
};

/// "scale" is a parameter ([1], or [C] per channel), "zero_point" a float parameter or buffer.
/// Besides the base's flags, a "learning_enabled" buffer (uint8 [1], 0 at construction) says
/// whether the qparams learn; it decides their requires_grad (also after a checkpoint load).
/// Buffer "observer_enabled" is MMRazor's "static_enabled".
///
/// forward(x): with the observer on, observe x and copy the observer's scale and zero point
/// into the qparams (static estimate); either way the scale is kept >= eps. Then, with fake quant
/// on, y = (clamp(round(x / s + z), qmin, qmax) - z) * s with z rounded (ATen's learnable op):
/// dy/dx is 1 inside the range, 0 outside; ds and dz follow LSQ/LSQ+ with the gradient scale.
///
/// Modes (MMRazor's): enable_param_learning (learn, fake quant, no observer),
/// enable_static_estimate (observer, fake quant, no learning), enable_val (fake quant only),
/// enable_static_observation (observer only: forward returns x).
class LearnableFakeQuantize : public FakeQuantizer {
 public:
  explicit LearnableFakeQuantize(std::shared_ptr<Observer> observer,
                                 const LearnableFakeQuantizeOptions& options = {});

  void enable_param_learning();
  void enable_static_estimate();
  void enable_val();
  void enable_static_observation();
  /// Sets learning_enabled and the qparams' requires_grad.
  void toggle_qparam_learning(bool on);
  bool learning_enabled() const { return learning_flag_.get(learning_enabled_); }

  QParams calculate_qparams() override;
  const torch::Tensor& scale() const override { return scale_; }
  const torch::Tensor& zero_point() const override { return zero_point_; }
  void reset_statistics() override;
  const LearnableFakeQuantizeOptions& options() const { return options_; }
  /// The gradient scale forward uses for an input of `numel` elements.
  double grad_factor(int64_t numel) const;

 protected:
  torch::Tensor forward(const torch::Tensor& x) override;

 private:
  void apply_learning_flag(bool on);

  LearnableFakeQuantizeOptions options_;
  torch::Tensor scale_, zero_point_, learning_enabled_, eps_;
  detail::FlagView learning_flag_;
};

/// MMRazor's model.apply(enable_param_learning / enable_static_estimate / enable_val) over the
/// LearnableFakeQuantize modules of the tree under `root` (others are left alone, as there).
void enable_param_learning(torch::nn::Module& root);
void enable_static_estimate(torch::nn::Module& root);
void enable_val(torch::nn::Module& root);

}  // namespace razor::quant
