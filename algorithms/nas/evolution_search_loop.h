#pragma once
// MMRazor's EvolutionSearchLoop as a `train_cfg` of a search config: a genetic search over
// the subnets of a trained supernet, under resource constraints, scored with inherited
// weights (after BN re-estimation when `calibrate_sample_num` > 0).
//
// Per search epoch: top the population up to `num_candidates` with random subnets that
// meet the constraints; score the new ones (each rank scores different candidates on the
// whole evaluation set; the scores are gathered); merge with the previous top-k and keep
// the best `top_k`; breed `num_mutation` mutants (each group re-drawn with `mutate_prob`)
// and `num_crossover` children (each group from the second parent with `crossover_prob`)
// from the top-k as the next population. All random draws come from the mutator's
// generator, seeded identically on every rank.
//
// Files (rank 0, in the work dir): `search_epoch_<e>.json` after each epoch (the last
// `max_keep_ckpts` kept; `--resume` continues exactly: it runs max_epochs − e more epochs),
// `search_history.jsonl` (every scored candidate: epoch, choices, subnet, score, FLOPs,
// params), and at the end `best_fix_subnet.yaml` and `best_subnet.pth` (the weights of the
// best subnet only, loadable with `razor test CONFIG best_subnet.pth --subnet
// best_fix_subnet.yaml`).
//
// With `predictor_cfg` (MMRazor's MetricPredictor), before the first epoch `train_samples`
// random subnets that meet the constraints are evaluated for real (split over the ranks),
// a predictor is fitted to them (on rank 0, its state broadcast) and written to
// `predictor.json`, and from then on candidates are scored by prediction. Every history
// line says whether its score was "measured" or "predicted" and at which stage
// ("predictor_samples", "search", "final"); the predictor's state is in every search
// checkpoint, so a resumed search predicts identically. The best subnet is finally
// evaluated for real once; both scores are logged, and best_subnet.pth's meta holds the
// measured "score" and the "predicted_score".
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/nas/subnet_prefix_cache.h"
#include "components/estimators/resource_estimator.h"
#include "components/predictors/metric_predictor.h"
#include "engine/loop.h"

namespace razor {

class NasAlgorithm;

struct EvolutionSearchOptions {
  int64_t max_epochs = 20;
  int64_t num_candidates = 50;
  int64_t top_k = 10;
  int64_t num_mutation = 25;
  int64_t num_crossover = 25;
  double mutate_prob = 0.1;
  double crossover_prob = 0.5;
  /// Training images for BN re-estimation before each evaluation (<= 0: none).
  int64_t calibrate_sample_num = -1;
  /// Resource name ("flops", "params", "latency") -> [min, max], in the estimator's units.
  std::vector<std::pair<std::string, std::pair<double, double>>> constraints_range = {
      {"flops", {0.0, 330.0}}};
  std::string score_key = "accuracy/top1";
  int64_t max_keep_ckpts = 3;
  /// A JSON file with a list of subnets to start from (instead of random ones).
  std::string init_candidates;
  /// Random draws allowed per wanted candidate before the search gives up on the
  /// constraints (MMRazor loops forever).
  int64_t max_sample_tries = 100;
  /// Device memory (MiB) for keeping the calibration and evaluation batches between
  /// candidates instead of reading them again (0: always read).
  int64_t cache_batches_mb = 1024;
  /// Memory (MiB) for keeping the outputs of the stages a subnet shares with the one scored
  /// before it, so that the next is scored from there (SubnetPrefixCache; needs the batches
  /// cached; 0: every subnet from the input).
  int64_t prefix_cache_mb = 1024;
  ResourceEstimatorOptions estimator;
};

/// One subnet of the search with what is known of it.
struct SearchCandidate {
  Json choices;  // {group key: choice}
  double score = -1;
  Resources resources;
  bool scored = false;
  /// The score came from the predictor, not from an evaluation.
  bool predicted = false;
};

class EvolutionSearchLoop : public TrainLoop {
 public:
  /// `predictor` (may be null): score candidates by prediction (predictor_cfg).
  EvolutionSearchLoop(Runner& runner, EvolutionSearchOptions options,
                      std::unique_ptr<MetricPredictor> predictor = nullptr);

  void run() override;
  int64_t max_epochs() const override { return options_.max_epochs; }
  int64_t max_iters() const override { return options_.max_epochs; }
  bool by_epoch() const override { return true; }
  bool trains_model() const override { return false; }

  const std::vector<SearchCandidate>& top_k() const { return top_k_; }
  /// Scores one subnet ({group key: choice}) on this rank, as the search does: BN
  /// re-estimation (if configured), then the metric on the whole evaluation set.
  double score(const Json& choices) { return evaluate(choices); }
  /// Scores several subnets on this rank, as the search does (in the order of their stage
  /// keys, so that neighbours share the most stages), returned in the order given.
  std::vector<double> score(const std::vector<Json>& choices);
  /// The stage-output cache (null before the first evaluation or when it does not apply).
  const SubnetPrefixCache* prefix_cache() const { return prefix_cache_.get(); }
  const EvolutionSearchOptions& options() const { return options_; }
  /// The predictor (null without predictor_cfg).
  const MetricPredictor* predictor() const { return predictor_.get(); }

 private:
  NasAlgorithm& algorithm();
  void run_epoch();
  /// Fills the population with random subnets that meet the constraints.
  void sample_candidates();
  /// Up to `wanted` random subnets that meet the constraints and are not in `present`
  /// (added to it), from the shared generator; none at all, with `already` none either,
  /// is an error.
  std::vector<SearchCandidate> draw_random(int64_t wanted, std::set<std::string>& present,
                                           size_t already);
  /// Scores of `choices`, split over the ranks (rank r takes r, r + world, ...) and
  /// gathered: by the predictor when it is active, else by evaluate().
  std::vector<double> score_split(const std::vector<Json>& choices, bool predict);
  /// Fits the predictor (pretrained file, or train_samples subnets evaluated for real),
  /// broadcasts rank 0's state and writes predictor.json.
  void init_predictor();
  /// Scores every unscored candidate (split over the ranks).
  void score_candidates();
  void update_top_k();
  void breed();
  /// Sets `choices` and checks the constraints, remembering the resources.
  bool meets_constraints(SearchCandidate& candidate);
  double evaluate(const Json& choices);
  /// The score_key metric of `metrics`; a missing one is a config error listing them.
  double score_of(const Metrics& metrics) const;
  /// Indices of `choices` in the order that shares the most stages from one to the next.
  std::vector<size_t> sharing_order(const std::vector<Json>& choices);
  Json crossover(const Json& a, const Json& b, double prob);

  void save_checkpoint();
  void resume(const std::string& path);
  void write_history();
  void write_best();
  std::string describe_constraints() const;

  EvolutionSearchOptions options_;
  std::unique_ptr<ResourceEstimator> estimator_;
  std::vector<SearchCandidate> candidates_;
  std::vector<SearchCandidate> top_k_;
  /// Every candidate scored so far, by its choices (a candidate is never scored twice).
  std::map<std::string, SearchCandidate> scored_;
  /// The searched model, checked once (algorithm()).
  NasAlgorithm* nas_ = nullptr;
  struct HistoryEntry {
    int64_t epoch;      // 0-based search epoch (-1: the predictor's samples)
    std::string stage;  // "predictor_samples", "search" or "final"
    SearchCandidate candidate;
  };
  /// The history, in scoring order.
  std::vector<HistoryEntry> history_;
  std::unique_ptr<MetricPredictor> predictor_;
  /// The calibration and evaluation batches, on the device, read once for every candidate
  /// (when they fit in cache_batches_mb; the loaders give the same batches each time).
  std::vector<Batch> calibration_batches_, val_batches_;
  bool batches_read_ = false, batches_cached_ = false;
  void read_batches();
  /// Set up with the cached batches when the model is a chain of stages (prefix_cache_mb).
  std::unique_ptr<SubnetPrefixCache> prefix_cache_;
  std::vector<PredictStage> stages_;
  /// Whether the predictor is fitted and scores candidates.
  bool predicting_ = false;
};

/// Registers EvolutionSearchLoop in the loop registry.
void register_evolution_search_loop();

}  // namespace razor
