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
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "components/estimators/resource_estimator.h"
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
  ResourceEstimatorOptions estimator;
};

/// One subnet of the search with what is known of it.
struct SearchCandidate {
  Json choices;  // {group key: choice}
  double score = -1;
  Resources resources;
  bool scored = false;
};

class EvolutionSearchLoop : public TrainLoop {
 public:
  EvolutionSearchLoop(Runner& runner, EvolutionSearchOptions options);

  void run() override;
  int64_t max_epochs() const override { return options_.max_epochs; }
  int64_t max_iters() const override { return options_.max_epochs; }
  bool by_epoch() const override { return true; }
  bool trains_model() const override { return false; }

  const std::vector<SearchCandidate>& top_k() const { return top_k_; }
  /// Scores one subnet ({group key: choice}) on this rank, as the search does: BN
  /// re-estimation (if configured), then the metric on the whole evaluation set.
  double score(const Json& choices) { return evaluate(choices); }
  const EvolutionSearchOptions& options() const { return options_; }

 private:
  NasAlgorithm& algorithm();
  void run_epoch();
  /// Fills the population with random subnets that meet the constraints.
  void sample_candidates();
  /// Scores every unscored candidate (split over the ranks).
  void score_candidates();
  void update_top_k();
  void breed();
  /// Sets `choices` and checks the constraints, remembering the resources.
  bool meets_constraints(SearchCandidate& candidate);
  double evaluate(const Json& choices);
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
  /// The history, in scoring order: (epoch, candidate).
  std::vector<std::pair<int64_t, SearchCandidate>> history_;
};

/// Registers EvolutionSearchLoop in the loop registry.
void register_evolution_search_loop();

}  // namespace razor
