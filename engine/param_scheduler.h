#pragma once
// Schedulers generic over a named optimiser value ("lr", "momentum", "weight_decay"), with
// begin/end windows, by epoch or by iteration (MMEngine's _ParamScheduler family).
//
// Each scheduler is a closed form: value = base * factor(step). Chained schedulers on the
// same value multiply their factors, which equals MMEngine's recursive chaining for the
// usual recipes (warm-up then decay, in disjoint windows). Being a pure function of the
// step, a scheduler has no state to save: resuming recomputes the same values.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/args.h"
#include "engine/model.h"
#include "engine/registry.h"

namespace razor {

class OptimWrapper;

class ParamScheduler {
 public:
  static constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();

  virtual ~ParamScheduler() = default;

  /// The optimiser value it schedules ("lr", "momentum", "weight_decay").
  const std::string& param_name() const { return param_name_; }
  /// Whether `step` counts epochs (true) or iterations (false), after resolve().
  bool by_epoch() const { return by_epoch_; }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

  /// Fixes the schedule against the run: converts epochs to iterations when
  /// `convert_to_iter_based`, and sets an unbounded `end` to the run's length.
  void resolve(int64_t iters_per_epoch, int64_t max_epochs, int64_t max_iters);

  /// The multiplier of the base value at `step` (epochs or iterations, from 0).
  double factor(int64_t step) const;

 protected:
  /// Reads the keys every scheduler has: begin, end, by_epoch, convert_to_iter_based.
  ParamScheduler(Args& args, std::string param_name);
  /// The factor at `relative` = step - begin, for begin <= step < end.
  virtual double factor_in_window(int64_t relative) const = 0;
  /// Multiplies every step-like setting (T_max, milestones, step_size) by `scale`.
  virtual void scale_steps(int64_t scale) { (void)scale; }
  /// Called once `end` is known.
  virtual void on_resolved() {}

  std::string param_name_;
  int64_t begin_ = 0;
  int64_t end_ = kUnbounded;
  bool by_epoch_ = true;
  bool convert_to_iter_based_ = false;
  bool resolved_ = false;
};

/// "schedulers": {MultiStep, Step, CosineAnnealing, Linear, Exponential, Constant, Poly} x
/// {LR, Momentum, ParamScheduler (with param_name = "...")}.
Registry<ParamScheduler>& scheduler_registry();
void register_schedulers();

/// Applies schedulers to an optimiser, value(group) = base(group) * prod factor(step), and to
/// any other named value of the model (Model::scheduled_values), base * prod factor(step).
class ParamSchedulerSet {
 public:
  ParamSchedulerSet(std::vector<std::shared_ptr<ParamScheduler>> schedulers, OptimWrapper& optim,
                    ScheduledValues model_values = {});

  /// Sets every scheduled value for the given position in the run.
  void apply(int64_t epoch, int64_t iter);
  bool empty() const { return schedulers_.empty(); }
  /// The base values the schedules multiply (one per param group and name).
  const std::vector<std::pair<std::string, std::vector<double>>>& bases() const { return bases_; }
  void set_bases(std::vector<std::pair<std::string, std::vector<double>>> bases) { bases_ = std::move(bases); }

 private:
  std::vector<std::shared_ptr<ParamScheduler>> schedulers_;
  OptimWrapper* optim_;
  ScheduledValues model_values_;
  std::vector<std::pair<std::string, std::vector<double>>> bases_;
};

}  // namespace razor
