#pragma once
// Self-distillation (MMRazor's SelfDistill, used by BYOT, "Be Your Own Teacher"): the
// network teaches itself. Teacher recorders hook into the same architecture as the student
// recorders (its deepest features and logits); connectors turn shallower stages into
// auxiliary heads, and the distiller's losses pull them towards the deepest outputs. One
// forward pass per step.
//
//   [model]
//   type = "SelfDistill"
//   architecture = { ... }
//   [model.distiller]
//   type = "BYOTDistiller"        # detaches the teacher records
#include <memory>

#include "algorithms/base_algorithm.h"
#include "components/distill/configurable_distiller.h"

namespace razor {

class SelfDistill : public BaseAlgorithm {
 public:
  SelfDistill(std::shared_ptr<Model> architecture, std::shared_ptr<ConfigurableDistiller> distiller,
              bool calculate_student_loss);

  /// "student.*" (the architecture's own losses, if calculate_student_loss) and "distill.*".
  LossMap loss(const Batch& batch) override;
  ConfigurableDistiller& distiller() { return *distiller_; }
  /// "distiller.distill_losses.<name>.loss_weight" for parameter schedulers.
  ScheduledValues scheduled_values() override { return prefixed("distiller.", distiller_->scheduled_values()); }

 private:
  std::shared_ptr<ConfigurableDistiller> distiller_;
  bool calculate_student_loss_;
};

void register_self_distill();

}  // namespace razor
