#pragma once
// Scoring many subnets of one supernet on the same images (an evolution search) repeats
// work: subnets that agree on every choice up to some stage compute the same outputs there,
// BN re-estimation included, since a stage's statistics depend only on its inputs.
// SubnetPrefixCache re-estimates stage by stage (ImageClassifier's predict_stages), then
// evaluates batch by batch, and keeps the outputs and statistics of the first stages for the
// next subnet that shares the choices up to them; subnets sorted by their stage keys share
// the most. The predictions are those of calibrate_bn_statistics followed by predict, to the
// bit: each stage runs the same ops on the same batches.
#include <cstdint>
#include <string>
#include <vector>

#include "components/architectures/image_classifier.h"
#include "components/nn/batch_norm.h"
#include "engine/model.h"

namespace razor {

class SubnetPrefixCache {
 public:
  /// `budget_bytes`: the most memory the kept outputs take (a stage's outputs for every
  /// calibration and evaluation image); the stages past it are recomputed for every subnet.
  explicit SubnetPrefixCache(int64_t budget_bytes) : budget_bytes_(budget_bytes) {}

  /// The stages of `model` (an algorithm, or the classifier itself) when it can be evaluated
  /// stage by stage: its classifier's backbone is a chain, every mutable under the model is
  /// an op mutable inside one stage (a value mutable may reach across stages), and no module
  /// has hooks (a chain skips its containers' hooks). Empty otherwise.
  static std::vector<PredictStage> stages_of(Model& model);

  /// For each stage, the current choices of the mutables in it and in every stage before.
  static std::vector<std::string> stage_keys(const std::vector<PredictStage>& stages);

  /// The scores `model.predict` gives for each of `eval` after calibrate_bn_statistics on
  /// `calibration` (inputs on the model's device, already cut to the samples wanted), with
  /// the model's current choices; `stages` from stages_of(model). The BatchNorms hold the
  /// re-estimated statistics afterwards, as after calibrate_bn_statistics.
  std::vector<torch::Tensor> predict(Model& model, const std::vector<PredictStage>& stages,
                                     const std::vector<torch::Tensor>& calibration,
                                     const std::vector<torch::Tensor>& eval);

  void clear() { entries_.clear(); }
  /// Stages taken from the cache and stages computed, since construction.
  int64_t reused_stages() const { return reused_; }
  int64_t computed_stages() const { return computed_; }

 private:
  /// One stage of the last subnet: its outputs and re-estimated statistics.
  struct Entry {
    std::string key;
    nn::Module* first_module = nullptr;
    int64_t parameter_version = 0;
    std::vector<torch::Tensor> calibration, eval;
    struct Norm {
      nn::BatchNorm2d* norm;
      torch::Tensor mean, var;
      int64_t batches;
    };
    std::vector<Norm> norms;
    int64_t bytes = 0;
  };
  /// Whether `entry` still holds for `stage` under `key` (same module, unchanged weights).
  static bool holds(const Entry& entry, const PredictStage& stage, const std::string& key);

  int64_t budget_bytes_;
  /// The stages of the last subnet, from the first, as far as the budget allowed.
  std::vector<Entry> entries_;
  /// The calibration and evaluation inputs the entries were computed on, and their versions.
  std::vector<torch::Tensor> inputs_;
  std::vector<int64_t> input_versions_;
  int64_t reused_ = 0, computed_ = 0;
};

}  // namespace razor
