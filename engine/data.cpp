#include "engine/data.h"

namespace razor {

Batch Batch::to(const torch::Device& device, bool non_blocking) const {
  Batch out;
  out.inputs = inputs.defined() ? inputs.to(device, non_blocking) : inputs;
  out.targets = targets.defined() ? targets.to(device, non_blocking) : targets;
  out.indices = indices;  // bookkeeping; stays where it is
  return out;
}

Registry<DataLoader>& dataloader_registry() {
  static Registry<DataLoader> registry("dataloaders");
  return registry;
}

}  // namespace razor
