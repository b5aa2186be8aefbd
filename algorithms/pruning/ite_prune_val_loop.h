#pragma once
// MMRazor's ItePruneValLoop: validation of a pruning algorithm that also writes, after each
// pass, the pruned model as it stands to the work dir:
//   fix_subnet.json        the channel mutator at its choices (MMRazor's export_fix_subnet
//                          in mutator mode), which a sub_model's fix_subnet reads;
//   fix_subnet_weight.pth  the architecture cut to its kept channels (static, sliced).
// `model = { type = "sub_model", cfg = <the architecture>, fix_subnet = "fix_subnet.json",
// init_cfg = { type = "Pretrained", checkpoint = "fix_subnet_weight.pth" } }` is then the
// plain pruned model.
#include <string>

#include "engine/loop.h"

namespace razor {

class ItePruneAlgorithm;

class ItePruneValLoop : public EvalLoop {
 public:
  ItePruneValLoop(Runner& runner, bool is_test) : EvalLoop(runner, is_test) {}
  Metrics run() override;
};

/// Writes `dir`/fix_subnet.json and `dir`/fix_subnet_weight.pth of `pruner` (atomically).
void write_fix_subnet(const ItePruneAlgorithm& pruner, const std::string& dir);

/// Registers ItePruneValLoop in the loop registry.
void register_ite_prune_val_loop();

}  // namespace razor
