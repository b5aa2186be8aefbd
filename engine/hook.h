#pragma once
// Hooks observe and act at fixed points of a run (MMEngine's Hook). They own no training
// state: loops own the counters, the algorithm owns train_step. A hook that keeps its own
// state across a resume (best score, kept files) saves it through the checkpoint hooks.
#include <cstdint>
#include <map>
#include <string>

#include "engine/config.h"
#include "engine/data.h"
#include "engine/model.h"
#include "engine/registry.h"

namespace razor {

class Runner;

/// Metric name -> value, in a stable order.
using Metrics = std::map<std::string, double>;

/// MMEngine's priorities: lower runs first.
enum Priority : int {
  kHighest = 0,
  kVeryHigh = 10,
  kHigh = 30,
  kAboveNormal = 40,
  kNormal = 50,
  kBelowNormal = 60,
  kLow = 70,
  kVeryLow = 90,
  kLowest = 100,
};

/// "HIGHEST", ..., "LOWEST" or an integer; unknown names are a config error.
int parse_priority(Args& args, const std::string& key, int fallback);

class Hook {
 public:
  virtual ~Hook() = default;
  virtual std::string name() const = 0;
  int priority() const { return priority_; }
  void set_priority(int priority) { priority_ = priority; }

  virtual void before_run(Runner&) {}
  virtual void after_run(Runner&) {}

  virtual void before_train(Runner&) {}
  virtual void after_train(Runner&) {}
  virtual void before_train_epoch(Runner&) {}
  virtual void after_train_epoch(Runner&) {}
  virtual void before_train_iter(Runner&, int64_t /*batch_idx*/, const Batch&) {}
  virtual void after_train_iter(Runner&, int64_t /*batch_idx*/, const Batch&, const LossMap&) {}

  virtual void before_val(Runner&) {}
  virtual void after_val(Runner&) {}
  virtual void before_val_epoch(Runner&) {}
  virtual void after_val_epoch(Runner&, const Metrics&) {}
  virtual void before_val_iter(Runner&, int64_t, const Batch&) {}
  virtual void after_val_iter(Runner&, int64_t, const Batch&, const torch::Tensor& /*outputs*/) {}

  virtual void before_test(Runner&) {}
  virtual void after_test(Runner&) {}
  virtual void before_test_epoch(Runner&) {}
  virtual void after_test_epoch(Runner&, const Metrics&) {}
  virtual void before_test_iter(Runner&, int64_t, const Batch&) {}
  virtual void after_test_iter(Runner&, int64_t, const Batch&, const torch::Tensor&) {}

  /// Adds this hook's state to `hook_state` (a JSON object saved in the checkpoint).
  virtual void before_save_checkpoint(Runner&, Json& /*hook_state*/) {}
  /// Restores what before_save_checkpoint stored.
  virtual void after_load_checkpoint(Runner&, const Json& /*hook_state*/) {}

 private:
  int priority_ = kNormal;
};

/// "hooks": IterTimerHook, LoggerHook, ParamSchedulerHook, CheckpointHook,
/// DistSamplerSeedHook, EmptyCacheHook.
Registry<Hook>& hook_registry();
void register_hooks();

}  // namespace razor
