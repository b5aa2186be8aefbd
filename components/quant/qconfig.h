#pragma once
// MMRazor's qconfig (mmrazor/structures/quantization/qconfig.py: QConfigHandler and
// QSchemeHandler), read from a razor config table:
//
//   [model.quantizer.global_qconfig]
//   w_observer = { type = "PerChannelMinMaxObserver" }
//   a_observer = { type = "MovingAverageMinMaxObserver" }
//   w_fake_quant = { type = "FakeQuantize" }
//   a_fake_quant = { type = "FakeQuantize" }
//   w_qscheme = { qdtype = "qint8", bit = 8, is_symmetry = true, is_symmetric_range = true }
//   a_qscheme = { qdtype = "quint8", bit = 8, is_symmetry = true, averaging_constant = 0.1 }
//
// and turned into the fake quantisers of weights and activations.
#include <cstdint>
#include <memory>
#include <string>

#include "components/quant/fake_quantize.h"
#include "components/quant/qscheme.h"
#include "engine/args.h"
#include "engine/registry.h"

namespace razor::quant {

/// One of w_qscheme / a_qscheme (MMRazor's QSchemeHandler).
struct QSchemeConfig {
  QDType qdtype = QDType::QUInt8;
  /// 2..8 bits (and 16 for activations).
  int64_t bit = 8;
  /// Symmetric (zero point fixed) or affine.
  bool is_symmetry = true;
  /// qint8 only: drop the most negative value ([-127, 127] at 8 bits).
  bool is_symmetric_range = false;
  /// Per channel along axis 0 (weights only); from a "PerChannel" observer type.
  bool is_per_channel = false;
  /// Halves the range as torch's reduce_range (MMRazor always passes false).
  bool reduce_range = false;
  /// Other keys (averaging_constant, zero_point_trainable, ...): for the fake quantiser or,
  /// if it does not take them, its observer.
  Json extra = Json::object();

  int64_t quant_min() const { return bit_range(qdtype, bit, is_symmetric_range).first; }
  int64_t quant_max() const { return bit_range(qdtype, bit, is_symmetric_range).second; }
  /// per_{channel,tensor}_{symmetric,affine}.
  QScheme torch_qscheme() const;
  /// MMRazor's to_observer_params(): dtype, qscheme, quant_min, quant_max, reduce_range,
  /// ch_axis (= 0, per channel), and the extra keys, as an observer table's keys.
  Json observer_params() const;
};

/// A checked qconfig: the six tables of MMRazor's check_qconfig, all required. Observer and
/// fake-quant types may carry MMRazor's "mmrazor." prefix; their tables may hold arguments
/// of their own besides `type` (a razor extension: MMRazor reads only the type).
class QConfig {
 public:
  /// Reads and checks `args` (its unknown keys are errors). Errors name the key at fault:
  /// a missing table, an unknown type, qdtype not quint8/qint8, bit out of range, a
  /// per-channel activation scheme, is_per_channel disagreeing with the observer type, a key
  /// that neither the fake quantiser nor its observer takes. Both fake quantisers are built
  /// once here, so every later build succeeds.
  static QConfig parse(Args& args);
  /// For a table outside a loaded config (tests, code-built qconfigs).
  static QConfig parse(const Json& table, const std::string& path = "qconfig");

  const QSchemeConfig& w_qscheme() const { return w_qscheme_; }
  const QSchemeConfig& a_qscheme() const { return a_qscheme_; }
  const std::string& w_observer_type() const { return w_observer_type_; }
  const std::string& a_observer_type() const { return a_observer_type_; }
  const std::string& w_fake_quant_type() const { return w_fake_quant_type_; }
  const std::string& a_fake_quant_type() const { return a_fake_quant_type_; }

  /// The fake_quants table of the weight quantiser (MMRazor's
  /// w_fake_quant.with_args(observer=w_observer, **w_qscheme.to_observer_params())).
  /// `num_channels` (per-channel schemes: the weight's size along axis 0) gives the observer
  /// and the qparams their final shape at once; -1 leaves them to the first observation.
  Json weight_fake_quant_table(int64_t num_channels = -1) const;
  Json activation_fake_quant_table() const;

  /// This qconfig with weights of `bit` bits (mixed precision; NNCF's 7-bit CPU weights).
  QConfig with_weight_bit(int64_t bit) const;

  std::shared_ptr<FakeQuantizer> build_weight_fake_quant(int64_t num_channels = -1,
                                                         const BuildContext& context = {}) const;
  std::shared_ptr<FakeQuantizer> build_activation_fake_quant(
      const BuildContext& context = {}) const;

 private:
  Json fake_quant_table(bool weight, int64_t num_channels) const;
  std::shared_ptr<FakeQuantizer> build(bool weight, int64_t num_channels,
                                       const BuildContext& context) const;

  std::string path_;
  std::shared_ptr<const Config> config_;
  QSchemeConfig w_qscheme_, a_qscheme_;
  std::string w_observer_type_, a_observer_type_, w_fake_quant_type_, a_fake_quant_type_;
  /// The observer and fake-quant tables without `type`.
  Json w_observer_args_, a_observer_args_, w_fake_quant_args_, a_fake_quant_args_;
};

}  // namespace razor::quant
