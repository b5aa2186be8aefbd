#pragma once
// DARTS's training loop and subnet dumps (MMRazor's DartsEpochBasedTrainLoop and
// DumpSubnetHook):
//
//   [train_cfg]
//   type = "DartsEpochBasedTrainLoop"
//   max_epochs = 50
//   mutator_dataloader = { batch_size = 64, dataset = { ..., indices = 25000 } }
//
// Each iteration pairs a train_dataloader batch (the weights' step) with a
// mutator_dataloader batch (α's step); an epoch is as long as the shorter loader. The
// mutator loader shuffles with the run's seed + 1, so the two halves are not paired sample by
// sample. At the end of training the loop writes the derived subnet (argmax op per edge, the
// top-2 edges per node) to `best_fix_subnet.yaml` in the work dir.
//
//   custom_hooks = [{ type = "DumpSubnetHook", interval = 10, max_keep_subnets = -1 }]
//
// writes `subnet_epoch_<e>.yaml` every `interval` epochs (`subnet_iter_<i>.yaml` with
// by_epoch = false), keeping the last `max_keep_subnets` (-1: all).
#include <cstdint>
#include <string>

#include "components/mutators/nas_mutator.h"
#include "engine/hook.h"

namespace razor {

/// The subnet a differentiable search derives: every group set to its sample (argmax α for
/// ops, the top-`num_chosen` α for routes), as {subnet name: {"chosen": choice}}. Call on
/// every rank (non-differentiable groups draw from the shared generator).
Json derive_subnet(NasMutator& mutator);

class DumpSubnetHook : public Hook {
 public:
  DumpSubnetHook(int64_t interval, bool by_epoch, int64_t max_keep_subnets);
  std::string name() const override { return "DumpSubnetHook"; }
  void after_train_epoch(Runner& runner) override;
  void after_train_iter(Runner& runner, int64_t, const Batch&, const LossMap&) override;

 private:
  void dump(Runner& runner, const std::string& unit, int64_t count);
  int64_t interval_;
  bool by_epoch_;
  int64_t max_keep_subnets_;
};

/// Registers DartsEpochBasedTrainLoop in loop_registry().
void register_darts_loop();
/// Registers DumpSubnetHook in hook_registry().
void register_dump_subnet_hook();

}  // namespace razor
