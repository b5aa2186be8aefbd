#include "components/distill/distill_loss.h"

namespace razor {

Registry<DistillLoss>& distill_loss_registry() {
  static Registry<DistillLoss> registry("distill_losses");
  return registry;
}

void register_distill_losses() {
  static bool done = false;
  if (done) return;
  done = true;
}

}  // namespace razor
