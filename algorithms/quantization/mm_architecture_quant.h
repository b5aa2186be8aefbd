#pragma once
// MMRazor's MMArchitectureQuant: any razor architecture with fake quantisers placed by a
// quantizer (components/quant/quantizer.h), for PTQ, QAT and LSQ.
//
//   [model]
//   type = "MMArchitectureQuant"
//   architecture = { type = "ImageClassifier", ... }   # the float model
//   float_checkpoint = "work_dirs/resnet20_fmnist/epoch_3.pth"
//   input_shapes = [1, 1, 28, 28]                    # the trace's example input
//   [model.quantizer]
//   type = "OpenVINOQuantizer"
//   global_qconfig = { ... }
//
// MMRazor traces three copies of the model (tensor, predict, loss) and syncs their qparams;
// razor's quantisers sit on the ops themselves, so every path shares them.
#include <memory>
#include <vector>

#include "algorithms/base_algorithm.h"
#include "components/quant/quantizer.h"

namespace razor {

class MMArchitectureQuant : public BaseAlgorithm {
 public:
  /// Places the quantisers on `architecture` (float weights already loaded), tracing it on
  /// zeros of `input_shape`.
  MMArchitectureQuant(std::shared_ptr<Model> architecture, const quant::QuantizerOptions& options,
                      std::vector<int64_t> input_shape);

  const quant::QuantPlan& plan() const { return *plan_; }

  /// The bit width of each weight quantiser (mixed precision), in the plan's order: the buffer
  /// "weight_bits", so a checkpoint carries an assignment and a model built from the config
  /// takes it on load.
  int64_t weight_bit(int64_t node) const;
  /// Sets the weight quantiser of dataflow node `node` to `bit` bits (its dtype and symmetric
  /// range kept) and observes the weight again, so its scale fits the new range.
  void set_weight_bit(int64_t node, int64_t bit);
  /// Bytes of the quantised weights (sum of weights x bits / 8).
  double weight_bytes() const;
  /// Applies "weight_bits" to the observers' ranges when it changed (a checkpoint load). Every
  /// forward calls it; code that reads the quantisers without a forward (export) calls it first.
  void sync_weight_bits();

  LossMap loss(const Batch& batch) override;
  torch::Tensor predict(const Batch& batch) override;
  torch::Tensor forward_tensor(const torch::Tensor& inputs) override;
  const std::vector<int64_t>& input_shape() const { return input_shape_; }

  /// torch's freeze_bn_stats: BatchNorms use (and keep) their running statistics, also in
  /// training mode; saved in checkpoints.
  void freeze_bn(bool on = true);
  bool bn_frozen() const { return bn_frozen_; }
  void train(bool on = true) override;

  Json extra_state() const override;
  void load_extra_state(const Json& state) override;

 private:
  std::shared_ptr<quant::QuantPlan> plan_;
  std::vector<int64_t> input_shape_;
  torch::Tensor weight_bits_;
  std::vector<int64_t> applied_bits_;
  const void* seen_bits_data_ = nullptr;
  int64_t seen_bits_version_ = -1;
  bool bn_frozen_ = false;
};

/// The fake quantisers' switches, to put back after a float evaluation.
class QuantSwitches {
 public:
  explicit QuantSwitches(torch::nn::Module& root);
  /// Observers and fake quantisation off: the model computes in float.
  void all_off();
  /// Observers off, fake quantisation as saved.
  void observers_off();
  void restore();

 private:
  std::vector<std::pair<quant::FakeQuantizer*, std::pair<bool, bool>>> saved_;
};

void register_quantization_algorithms();

}  // namespace razor
