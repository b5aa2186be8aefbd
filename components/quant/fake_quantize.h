#pragma once
// Fake quantisers: razor modules that take a tensor and return it quantised and dequantised
// (float in, float out), with the observer that sets their scale and zero point as the child
// module "activation_post_process" (torch's name, so state dict keys match PyTorch's). The
// observer/fake-quant switches are uint8 buffers, so they land in checkpoints.
//
// A fake quantiser attaches to an op as its weight or input quantiser; it knows nothing of
// the model it sits in.
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "components/nn/module.h"
#include "components/quant/observer.h"

namespace razor::quant {

namespace detail {
/// Reads a uint8 [1] flag buffer without a device synchronisation on every call: the value
/// is read again only when the tensor's storage or version counter changed (copy_, fill_,
/// a checkpoint load, a move to another device).
class FlagView {
 public:
  bool get(const torch::Tensor& flag) const;
  /// Sets the flag (in place) and remembers the value.
  void set(torch::Tensor& flag, bool value);

 private:
  mutable const void* data_ = nullptr;
  mutable int64_t version_ = -1;
  mutable bool value_ = false;
};
}  // namespace detail

/// The base of every fake quantiser: "fake_quant_enabled" and "observer_enabled" buffers
/// (uint8 [1], both 1 at construction, as torch's FakeQuantizeBase), the observer, and the
/// qparams. forward(x) observes x if the observer is enabled (in eval mode too, as torch and
/// MMRazor's PTQ rely on), then fake-quantises it if fake quant is enabled.
class FakeQuantizer : public nn::Module {
 public:
  FakeQuantizer(const std::string& type_name, std::shared_ptr<Observer> observer);

  void enable_observer(bool on = true) { observer_flag_.set(observer_enabled_, on); }
  void disable_observer() { enable_observer(false); }
  void enable_fake_quant(bool on = true) { fake_quant_flag_.set(fake_quant_enabled_, on); }
  void disable_fake_quant() { enable_fake_quant(false); }
  bool observer_enabled() const { return observer_flag_.get(observer_enabled_); }
  bool fake_quant_enabled() const { return fake_quant_flag_.get(fake_quant_enabled_); }

  /// torch's calculate_qparams: the observer's for FakeQuantize; the learnt ones (scale
  /// clamped to eps, zero point rounded and clamped to the range) for LearnableFakeQuantize.
  /// Detached; zero point int64.
  virtual QParams calculate_qparams() = 0;
  /// The stored scale (float, [1] or [C]) and zero point (int32 for FakeQuantize, float for
  /// LearnableFakeQuantize).
  virtual const torch::Tensor& scale() const = 0;
  virtual const torch::Tensor& zero_point() const = 0;
  /// MMRazor's reset_observer_and_fakequant_statistics: the observer forgets its statistics,
  /// scale becomes 1 and zero point 0 (shapes kept).
  virtual void reset_statistics();

  Observer& observer() const { return *observer_; }
  const std::shared_ptr<Observer>& observer_ptr() const { return observer_; }
  const std::string& type_name() const { return type_name_; }
  int64_t quant_min() const { return observer_->quant_min(); }
  int64_t quant_max() const { return observer_->quant_max(); }
  QDType dtype() const { return observer_->dtype(); }
  QScheme qscheme() const { return observer_->qscheme(); }
  bool per_channel() const { return observer_->per_channel(); }
  /// -1 for per-tensor quantisers.
  int64_t ch_axis() const { return observer_->ch_axis(); }

  void pretty_print(std::ostream& stream) const override;

 protected:
  /// The channel axis for an input of `dim` dimensions (ATen wants it non-negative).
  int64_t axis_for(int64_t dim) const;
  /// The initial number of qparams: num_channels for a per-channel observer that knows it,
  /// else 1 (torch's; resized at the first observation).
  int64_t initial_qparams_size() const;
  /// ATen's fake quantisation kernels are float32 only: a clear error for anything else.
  void check_input(const torch::Tensor& x) const;

  torch::Tensor fake_quant_enabled_, observer_enabled_;

 private:
  std::string type_name_;
  std::shared_ptr<Observer> observer_;
  detail::FlagView fake_quant_flag_, observer_flag_;
};

/// torch.ao's FakeQuantize: "scale" (float) and "zero_point" (int32) buffers copied from the
/// observer after each observation; fake quantisation through ATen's
/// fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine with the observer's
/// quant_min/quant_max, so the backward is the straight-through estimator (gradient 1 where
/// round(x / scale) + zero_point lies in the range, 0 outside). No gradient for the qparams.
class FakeQuantize : public FakeQuantizer {
 public:
  explicit FakeQuantize(std::shared_ptr<Observer> observer);
  QParams calculate_qparams() override;
  const torch::Tensor& scale() const override { return scale_; }
  const torch::Tensor& zero_point() const override { return zero_point_; }
  void reset_statistics() override;

 protected:
  torch::Tensor forward(const torch::Tensor& x) override;

 private:
  torch::Tensor scale_, zero_point_;
};

/// Every fake quantiser in the module tree under `root` (root itself included), in
/// registration order: what MMRazor's model.apply(...) reaches.
std::vector<FakeQuantizer*> fake_quantizers(torch::nn::Module& root);
/// MMRazor's model.apply(enable_observer / disable_observer / enable_fake_quant /
/// disable_fake_quant) over the tree under `root`.
void enable_observer(torch::nn::Module& root, bool on = true);
void enable_fake_quant(torch::nn::Module& root, bool on = true);
/// MMRazor's reset_observer_and_fakequant_statistics over the tree under `root`.
void reset_statistics(torch::nn::Module& root);

}  // namespace razor::quant
