#pragma once
// Loops own iteration and the counters (MMEngine's loops): a train loop runs epochs or
// iterations and calls validation; val and test loops run one pass and compute metrics.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include <torch/types.h>

#include "engine/hook.h"
#include "engine/metric.h"
#include "engine/registry.h"

namespace razor {

class Runner;

class Loop {
 public:
  virtual ~Loop() = default;
};

class TrainLoop : public Loop {
 public:
  virtual void run() = 0;
  /// Completed epochs and iterations (the position a checkpoint records).
  int64_t epoch() const { return epoch_; }
  int64_t iter() const { return iter_; }
  /// Restores the position from a checkpoint.
  void set_position(int64_t epoch, int64_t iter) {
    epoch_ = epoch;
    iter_ = iter;
  }
  virtual int64_t max_epochs() const = 0;
  virtual int64_t max_iters() const = 0;
  /// Whether checkpoints, logs and schedules count in epochs.
  virtual bool by_epoch() const = 0;
  /// Whether the loop trains the model (an optimiser, schedulers and data parallelism are
  /// set up for it); a search loop only evaluates it.
  virtual bool trains_model() const { return true; }

  /// Fails (on every rank) if a loss was NaN or infinite on any rank since the last check.
  /// The loop checks every `check_interval` iterations and at the end of each epoch, and the
  /// checkpoint hook before each save; in between nothing waits on the device.
  void check_finite();

 protected:
  explicit TrainLoop(Runner& runner) : runner_(runner) {}
  /// Runs one train step with its hooks; fails on a NaN or infinite loss.
  void run_iter(int64_t batch_idx, const Batch& batch);
  /// The batches of the current epoch a resumed checkpoint already consumed (0 at an epoch
  /// boundary); a position that does not fit `per_epoch` batches is an error.
  int64_t batches_done_in_epoch(int64_t per_epoch) const;
  /// Runs validation when it is due after `completed` epochs (or iterations).
  void maybe_validate(int64_t completed, int64_t total);

  Runner& runner_;
  int64_t epoch_ = 0;
  int64_t iter_ = 0;
  int64_t val_begin_ = 1;
  int64_t val_interval_ = 1;
  /// Iterations between finite-loss checks (train_cfg.check_interval).
  int64_t check_interval_ = 50;

 private:
  static constexpr int64_t kNoBadIter = std::numeric_limits<int64_t>::max();
  void reset_finite_check(const torch::Device& device);
  /// The first iteration whose loss was not finite, on the device; kNoBadIter if none.
  torch::Tensor first_bad_iter_;
  torch::Tensor first_bad_value_;
};

/// One pass over a loader with the model in eval mode, computing metrics.
class EvalLoop : public Loop {
 public:
  EvalLoop(Runner& runner, bool is_test) : runner_(runner), is_test_(is_test) {}
  virtual Metrics run();

 protected:
  /// Logs `metrics` of several subnets on one line ("validation of `what`: key: value ...")
  /// and hands them to the message hub, as a subnet loop ends.
  void report_subnets(const Metrics& metrics, const std::string& what, int precision) const;

  Runner& runner_;
  bool is_test_;
};

/// "loops": EpochBasedTrainLoop, IterBasedTrainLoop, ValLoop, TestLoop.
Registry<Loop>& loop_registry();
void register_loops();

}  // namespace razor
