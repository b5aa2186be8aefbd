#pragma once
// MMRazor's hooks for pruning runs (implementations/pruning/group_fisher/hook.py):
//   ResourceInfoHook(interval = 10, resource_type = "flops" | "params", save_ckpt_thr = [0.5],
//     early_stop = true): every `interval` iterations, when the pruned model's share of the
//     full model's FLOPs (or params) falls below the next threshold, saves
//     `flops_0.50.pth` (a checkpoint `razor export --pruned` cuts); with early_stop the
//     pruning ends once every threshold is saved and training goes on at those widths
//     (MMRazor exits the process there). Logs the share after each epoch.
//   PruningStructureHook(by_epoch = true, interval = 1): logs every unit's width and the
//     range of its importance.
#include <string>
#include <vector>

#include "engine/hook.h"

namespace razor {

class ResourceInfoHook : public Hook {
 public:
  ResourceInfoHook(int64_t interval, std::string resource_type, std::vector<double> thresholds, bool early_stop);
  std::string name() const override { return "ResourceInfoHook"; }
  void after_train_iter(Runner& runner, int64_t batch_idx, const Batch& batch, const LossMap& losses) override;
  void after_train_epoch(Runner& runner) override;
  void before_save_checkpoint(Runner& runner, Json& state) override;
  void after_load_checkpoint(Runner& runner, const Json& state) override;
  /// MMRazor's demo_input (at `where`): checked against the mutator's at the first use.
  void set_demo_input(const Json& shape, const std::string& where) {
    demo_input_ = shape;
    demo_input_where_ = where;
  }

 private:
  Json demo_input_;
  std::string demo_input_where_;
  int64_t interval_;
  std::string resource_type_;
  /// Largest first; each is removed once saved.
  std::vector<double> thresholds_;
  bool early_stop_;
};

class PruningStructureHook : public Hook {
 public:
  PruningStructureHook(bool by_epoch, int64_t interval) : by_epoch_(by_epoch), interval_(interval) {}
  std::string name() const override { return "PruningStructureHook"; }
  void after_train_epoch(Runner& runner) override;
  void after_train_iter(Runner& runner, int64_t batch_idx, const Batch& batch, const LossMap& losses) override;

 private:
  void show(Runner& runner);
  bool by_epoch_;
  int64_t interval_;
};

void register_pruning_hooks();

}  // namespace razor
