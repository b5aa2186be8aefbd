#include "algorithms/distill/self_distill.h"

#include <torch/torch.h>

#include "components/nn/module.h"
#include "engine/error.h"

namespace razor {

SelfDistill::SelfDistill(std::shared_ptr<Model> architecture, std::shared_ptr<ConfigurableDistiller> distiller,
                         bool calculate_student_loss)
    : BaseAlgorithm(std::move(architecture)), calculate_student_loss_(calculate_student_loss) {
  distiller_ = register_module("distiller", std::move(distiller));
  distiller_->prepare(*architecture_, architecture_.get());
}

LossMap SelfDistill::loss(const Batch& batch) {
  LossMap losses;
  {
    DeliveryScope delivering(distiller_->deliveries(), /*override_data=*/true);
    RecordingScope student(distiller_->student_recorders());
    RecordingScope teacher(distiller_->teacher_recorders());
    LossMap own = architecture_->loss(batch);
    if (calculate_student_loss_) {
      for (auto& item : own) losses.emplace_back("student." + item.first, item.second);
    }
  }
  for (auto& item : distiller_->compute_distill_losses()) losses.emplace_back("distill." + item.first, item.second);
  RAZOR_CHECK(!losses.empty(), "SelfDistill: no loss to train with (calculate_student_loss = false and no distill losses)");
  return losses;
}

void register_self_distill() {
  static bool done = false;
  if (done) return;
  done = true;
  register_distillers();
  model_registry().add("SelfDistill", [](Args& args, const BuildContext& context) {
    Args architecture_args = args.sub("architecture");
    auto architecture = build_model_as<Model>(architecture_args, context, "an architecture");
    nn::assign_paths(*architecture);
    const bool calculate_student_loss = args.get<bool>("calculate_student_loss", true);
    Args distiller_args = args.sub("distiller");
    auto distiller = distiller_registry().build(distiller_args, context, "BYOTDistiller");
    return std::static_pointer_cast<torch::nn::Module>(
        std::make_shared<SelfDistill>(architecture, distiller, calculate_student_loss));
  });
}

}  // namespace razor
