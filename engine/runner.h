#pragma once
// The Runner builds everything from a config and owns the run's state: model, data
// loaders, optimiser wrapper, schedulers, loops, hooks, and the message hub of latest
// values (MMEngine's Runner). Components are built lazily, so `razor test` never builds
// an optimiser and `razor train` never builds the test loader before it is needed.
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/config.h"
#include "engine/data.h"
#include "engine/data_parallel.h"
#include "engine/hook.h"
#include "engine/loop.h"
#include "engine/metric.h"
#include "engine/model.h"
#include "engine/optim_wrapper.h"
#include "engine/param_scheduler.h"

namespace razor {

/// Settings that come from the command line rather than the config.
struct RunnerOptions {
  std::optional<std::string> work_dir;
  std::optional<std::string> device;
  std::optional<int64_t> seed;
  /// "" = no resume; "auto" = the latest checkpoint in the work dir; else a file.
  std::string resume;
  /// Whether this process writes files and logs (rank 0).
  bool write_files = true;
  /// Overrides the config's log_level (the benchmarks keep stdout for their JSON lines).
  std::optional<std::string> log_level;
  /// Where rank and world size come from: "auto", "none", "mpi" or "env" (dist.h).
  std::string launcher = "auto";
};

/// The latest logged values and run-wide information (MMEngine's MessageHub).
struct MessageHub {
  std::map<std::string, double> scalars;  // "loss", "lr", "time", "accuracy/top1", ...
  Json runtime_info = Json::object();     // best score, etc.; saved in checkpoints
};

class Runner {
 public:
  Runner(std::shared_ptr<const Config> config, RunnerOptions options = {});
  ~Runner();

  /// Trains with the train loop, validating as configured; resumes or loads weights first.
  void train();
  /// Runs the validation loop once and returns its metrics.
  Metrics val();
  /// Runs the test loop once and returns its metrics.
  Metrics test();

  // Components, built on first use.
  Model& model();
  std::shared_ptr<Model> model_ptr();
  OptimWrapper& optim_wrapper();
  ParamSchedulerSet& schedulers();
  DataLoader& train_dataloader();
  DataLoader& val_dataloader();
  DataLoader& test_dataloader();
  /// The loader `key` ("val_dataloader", "train_dataloader") over the whole data set on this
  /// rank, not a shard: a search evaluates different candidates on different ranks.
  DataLoader& whole_dataloader(const std::string& key);
  Evaluator& val_evaluator();
  Evaluator& test_evaluator();
  TrainLoop& train_loop();
  bool has_val() const;

  // Run state.
  int64_t epoch() const;
  int64_t iter() const;
  int64_t max_epochs();
  int64_t max_iters();
  MessageHub& message_hub() { return hub_; }
  const Config& config() const { return *config_; }
  std::shared_ptr<const Config> config_ptr() const { return config_; }
  const std::string& work_dir() const { return work_dir_; }
  /// The command line's settings (a search loop reads `resume`).
  const RunnerOptions& options() const { return options_; }
  const std::string& experiment_name() const { return experiment_name_; }
  torch::Device device() const { return device_; }
  bool channels_last() const { return channels_last_; }
  /// The floating-point type of the model and its inputs (config `dtype`).
  torch::Dtype dtype() const { return dtype_; }
  uint64_t seed() const { return seed_; }
  /// Whether this process writes logs, checkpoints and results (rank 0 only).
  bool write_files() const { return write_files_; }
  /// The data parallelism of a multi-process training run; null in one process.
  DataParallel* data_parallel() { return data_parallel_.get(); }
  /// Makes it (when the world size is above 1) for the model and optimiser wrapper; train()
  /// calls it, after loading weights.
  void setup_data_parallel();

  /// Moves a batch to the run's device (and memory format).
  Batch to_device(const Batch& batch) const;

  /// Calls `fn` on every hook in priority order.
  void call_hooks(const std::function<void(Hook&)>& fn);
  const std::vector<std::shared_ptr<Hook>>& hooks() const { return hooks_; }
  void register_hook(std::shared_ptr<Hook> hook);

  /// Saves model, optimiser, loop position, RNG state, message hub, hook states and the
  /// config to `filename` in the work dir, atomically; updates `last_checkpoint`.
  /// Returns the full path.
  std::string save_checkpoint(const std::string& filename);
  /// Restores everything save_checkpoint wrote (for --resume).
  void resume_from(const std::string& path);
  /// Loads model weights only (load_from, razor test).
  /// With `require_all`, a model weight missing from the file is an error instead of a
  /// warning (testing would otherwise measure a randomly initialised model).
  void load_weights(const std::string& path, bool require_all = false);

  /// Writes one JSON object per line to scalars.jsonl in the work dir (rank 0 only).
  void log_scalars(const Json& record);

 private:
  Args root_args();
  BuildContext build_context(bool even_shards = true);
  std::shared_ptr<DataLoader> build_dataloader(const std::string& key);
  std::shared_ptr<Evaluator> build_evaluator(const std::string& key);
  std::shared_ptr<EvalLoop> build_eval_loop(const std::string& key, const std::string& default_type);
  void build_hooks();
  void setup_environment();
  std::string resolve_resume_path() const;

  std::shared_ptr<const Config> config_;
  RunnerOptions options_;
  std::string work_dir_;
  std::string experiment_name_;
  torch::Device device_ = torch::kCPU;
  bool channels_last_ = false;
  torch::Dtype dtype_ = torch::kFloat;
  uint64_t seed_ = 0;
  bool write_files_ = true;
  std::unique_ptr<DataParallel> data_parallel_;

  std::shared_ptr<Model> model_;
  std::shared_ptr<OptimWrapper> optim_wrapper_;
  std::unique_ptr<ParamSchedulerSet> schedulers_;
  std::shared_ptr<DataLoader> train_loader_, val_loader_, test_loader_;
  std::map<std::string, std::shared_ptr<DataLoader>> whole_loaders_;
  std::shared_ptr<Evaluator> val_evaluator_, test_evaluator_;
  std::shared_ptr<TrainLoop> train_loop_;
  std::vector<std::shared_ptr<Hook>> hooks_;
  bool hooks_built_ = false;
  MessageHub hub_;
  std::unique_ptr<std::ofstream> scalars_file_;
};

/// The root table keys the runner itself reads (others belong to components).
std::vector<std::string> runner_keys();

}  // namespace razor
