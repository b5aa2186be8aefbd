#pragma once
// MMRazor's SlimmableValLoop: validation (or test) of a SlimmableNetwork, subnet by subnet
// (only the deployed one of a deployed network). Metrics get the subnet's prefix,
// "subnet_0.accuracy/top1", beside "subnet_0.flops_ratio" and "subnet_0.params_ratio".
#include "engine/loop.h"

namespace razor {

class SlimmableValLoop : public EvalLoop {
 public:
  SlimmableValLoop(Runner& runner, bool is_test) : EvalLoop(runner, is_test) {}
  Metrics run() override;
};

/// Registers SlimmableValLoop and SlimmableTestLoop in the loop registry.
void register_slimmable_val_loop();

}  // namespace razor
