#pragma once
// MMRazor's LSQ observers (mmrazor/models/observers/lsq.py): min/max observers that also keep
// the mean absolute value of the latest observation, for LSQ's step-size initialisation
// s = 2 * mean|x| / sqrt(quant_max) (Esser et al., "Learned Step Size Quantization").
#include "components/quant/minmax_observers.h"

namespace razor::quant {

/// MinMaxObserver plus a "tensor_norm" buffer = mean|x| of the latest observation (NaN
/// before the first). calculate_qparams: the zero point of MinMaxObserver, the scale
/// 2 * tensor_norm / sqrt(quant_max); (1, 0) before anything was observed. In a
/// multi-process run it first sets tensor_norm to the ranks' mean and min/max to the global
/// range, so every rank computes the same parameters (a collective: call it on every rank).
class LSQObserver : public MinMaxObserver {
 public:
  explicit LSQObserver(const ObserverOptions& options = {});
  void observe(const torch::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset() override;
  const torch::Tensor& tensor_norm() const { return tensor_norm_; }

 private:
  torch::Tensor tensor_norm_;
};

/// PerChannelMinMaxObserver plus a per-channel "tensor_norm" ([C]: mean|x| over each
/// channel of the latest observation). calculate_qparams as LSQObserver, per channel.
class LSQPerChannelObserver : public PerChannelMinMaxObserver {
 public:
  explicit LSQPerChannelObserver(const ObserverOptions& options = {});
  QParams calculate_qparams() override;
  void reset() override;
  const torch::Tensor& tensor_norm() const { return tensor_norm_; }

 protected:
  void update(const torch::Tensor& y) override;

 private:
  torch::Tensor tensor_norm_;
};

}  // namespace razor::quant
