#pragma once
// MMRazor's MetricPredictor: an accuracy predictor for the evolution search. A subnet's
// choices ({group key: choice}) are encoded over the search groups in the mutator's order —
// `onehot` (one 0/1 slot per choice of each group, concatenated) or `normal` (the index of
// the chosen choice in each group; "index" is accepted for it) — and a handler
// (GaussProcessHandler, MLPHandler) regresses the scores of subnets evaluated for real.
//
// Its state (encoding, search space, training samples, the handler's fitted state) is one
// JSON document: `predictor.json` in a search's work dir, part of every search checkpoint,
// and loadable as `pretrained`, so that a resumed search predicts bit for bit the same.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "components/mutables/mutable.h"
#include "components/predictors/predictor_handler.h"

namespace razor {

class NasMutator;

/// One search group as the encoding sees it.
struct EncodedGroup {
  std::string key;
  std::vector<Choice> choices;
};

/// The mutator's search groups, in its (stable, module) order.
std::vector<EncodedGroup> search_space_of(const NasMutator& mutator);

struct MetricPredictorOptions {
  /// "onehot" or "normal" (index encoding).
  std::string encoding_type = "onehot";
  /// Random subnets (meeting the constraints) evaluated for real to fit the predictor
  /// (MMRazor's default is 2; its predictor configs use 20).
  int64_t train_samples = 2;
  /// The metric the predictor predicts (the search's score_key).
  std::string score_key = "accuracy/top1";
  /// A JSON file: a predictor state (predictor.json) or evaluated samples, used instead of
  /// evaluating `train_samples` subnets. Empty: none.
  std::string pretrained;

  // clang-format off
  MetricPredictorOptions& with_encoding_type(std::string v) { encoding_type = std::move(v); return *this; }
  MetricPredictorOptions& with_train_samples(int64_t v) { train_samples = v; return *this; }
  MetricPredictorOptions& with_score_key(std::string v) { score_key = std::move(v); return *this; }
  MetricPredictorOptions& with_pretrained(std::string v) { pretrained = std::move(v); return *this; }
  // clang-format on
};

/// A subnet with its measured score.
struct PredictorSample {
  Json choices;  // {group key: choice}
  double score = 0;
};

class MetricPredictor {
 public:
  MetricPredictor(MetricPredictorOptions options, std::shared_ptr<PredictorHandler> handler);

  /// The groups to encode over; call before encode/fit/predict (a search does it once its
  /// model's mutator is known).
  void set_search_space(std::vector<EncodedGroup> space);
  const std::vector<EncodedGroup>& search_space() const { return space_; }
  /// Length of an encoded subnet.
  int64_t num_features() const;

  /// The encoded subnet (float64 vector); a missing group or a choice a group does not have
  /// is a config error naming both.
  torch::Tensor encode(const Json& choices) const;
  /// Rows of encoded subnets (N x num_features).
  torch::Tensor encode(const std::vector<Json>& choices) const;

  /// Fits the handler. Samples of the same subnet are merged (their mean score), so that
  /// the regression never sees one input with two targets. `seed` drives any randomness.
  void fit(const std::vector<PredictorSample>& samples, uint64_t seed);
  double predict(const Json& choices) const;
  std::vector<double> predict(const std::vector<Json>& choices) const;
  bool fitted() const { return handler_->fitted(); }

  /// The samples of the last fit (merged), in first-seen order.
  const std::vector<PredictorSample>& samples() const { return samples_; }
  const MetricPredictorOptions& options() const { return options_; }
  PredictorHandler& handler() { return *handler_; }
  const PredictorHandler& handler() const { return *handler_; }

  Json state() const;
  /// Loads a state; one of another encoding, search space or handler type is a config error
  /// naming `origin` and what differs.
  void load_state(const Json& state, const std::string& origin);
  /// state() to `path` (written atomically), and back.
  void save(const std::string& path) const;
  void load(const std::string& path);

 private:
  MetricPredictorOptions options_;
  std::shared_ptr<PredictorHandler> handler_;
  std::vector<EncodedGroup> space_;
  std::vector<PredictorSample> samples_;
};

/// Whether a parsed JSON document is a predictor state (rather than a list of samples).
bool is_predictor_state(const Json& document);

/// Reads a `pretrained` file: a predictor state, or samples as a JSON list (or
/// {"samples": [...]}) or JSON lines (a search's search_history.jsonl), each with "score"
/// and either "choices" ({group key: choice}) or "subnet" ({name: {chosen: choice}}).
/// Lines whose "source" is "predicted" are skipped. Returns the document (a state) or the
/// list of sample objects, unconverted.
Json read_pretrained_predictor(const std::string& path);

/// Builds from MMRazor's `predictor_cfg = { type = "MetricPredictor", handler_cfg = {...},
/// encoding_type = "onehot", train_samples = 20, score_key = "...", pretrained = "...",
/// fit_cfg = {...} }`. Unknown types and keys, train_samples < 1 and unknown encodings are
/// config errors naming the key. `score_key` defaults to `default_score_key` (a search
/// passes its own).
std::unique_ptr<MetricPredictor> build_metric_predictor(
    Args& args, const BuildContext& context = {},
    const std::string& default_score_key = "accuracy/top1");

}  // namespace razor
