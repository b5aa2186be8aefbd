#pragma once
// The hooks every run has unless the config turns them off (`default_hooks.NAME = false`):
// timer, logger, param_scheduler, checkpoint, sampler_seed.
#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "engine/hook.h"

namespace razor {

/// Measures iteration and data-loading time into the message hub ("time", "data_time").
class IterTimerHook : public Hook {
 public:
  std::string name() const override { return "IterTimerHook"; }
  void before_train(Runner&) override;
  void before_train_epoch(Runner&) override;
  void before_train_iter(Runner&, int64_t, const Batch&) override;
  void after_train_iter(Runner&, int64_t, const Batch&, const LossMap&) override;

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_;
  std::deque<double> times_, data_times_;  // a window for smoothed figures
  double total_time_ = 0.0;
  int64_t timed_iters_ = 0;
};

/// Progress with ETA (a rewriting line on a terminal, plain lines every `interval`
/// iterations otherwise) and scalars.jsonl records every `interval` iterations.
class LoggerHook : public Hook {
 public:
  explicit LoggerHook(int64_t interval = 50) : interval_(interval) {}
  std::string name() const override { return "LoggerHook"; }
  void before_train(Runner&) override;
  void after_train_iter(Runner&, int64_t, const Batch&, const LossMap&) override;
  void after_train_epoch(Runner&) override;
  void after_val_epoch(Runner&, const Metrics&) override;
  void after_test_epoch(Runner&, const Metrics&) override;
  void after_val_iter(Runner&, int64_t, const Batch&, const torch::Tensor&) override;
  void after_test_iter(Runner&, int64_t, const Batch&, const torch::Tensor&) override;

 private:
  void log_eval(Runner&, const Metrics&, const std::string& mode);
  void eval_progress(Runner&, int64_t index, bool is_test);
  int64_t interval_;
  int64_t start_iter_ = 0;
  /// The values of the last logged iteration (the progress line repeats them in between).
  std::vector<std::pair<std::string, double>> last_values_;
};

/// Sets the scheduled optimiser values before each iteration.
class ParamSchedulerHook : public Hook {
 public:
  std::string name() const override { return "ParamSchedulerHook"; }
  void before_train_iter(Runner&, int64_t, const Batch&) override;
};

/// Saves checkpoints every `interval` epochs (or iterations), keeps the last
/// `max_keep_ckpts`, and the best one by `save_best` ("auto" = the first metric).
class CheckpointHook : public Hook {
 public:
  explicit CheckpointHook(Args& args);
  std::string name() const override { return "CheckpointHook"; }
  void before_train(Runner&) override;
  void after_train_epoch(Runner&) override;
  void after_train_iter(Runner&, int64_t, const Batch&, const LossMap&) override;
  void after_val_epoch(Runner&, const Metrics&) override;
  void before_save_checkpoint(Runner&, Json&) override;
  void after_load_checkpoint(Runner&, const Json&) override;

 private:
  void save(Runner&, const std::string& filename);
  int64_t interval_;
  std::optional<bool> by_epoch_;  // default: the train loop's
  int64_t max_keep_ckpts_;
  bool save_last_;
  std::string save_best_;
  std::string rule_;
  std::vector<std::string> kept_;
  std::string best_path_;
  std::optional<double> best_score_;
};

/// Gives the train loader its epoch, so each epoch shuffles differently but reproducibly.
class DistSamplerSeedHook : public Hook {
 public:
  std::string name() const override { return "DistSamplerSeedHook"; }
  void before_train_epoch(Runner&) override;
};

}  // namespace razor
