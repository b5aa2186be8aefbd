#include "components/distill/distill_loss.h"

#include "components/distill/losses/losses.h"

namespace razor {

Registry<DistillLoss>& distill_loss_registry() {
  static Registry<DistillLoss> registry("distill_losses");
  return registry;
}

void register_distill_losses() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = distill_loss_registry();
  registry.add("KLDivergence", distill::KLDivergence::from_args);
  registry.add("ChannelWiseDivergence", distill::ChannelWiseDivergence::from_args);
  registry.add("DKDLoss", distill::DKDLoss::from_args);
  registry.add("ABLoss", distill::ABLoss::from_args);
  registry.add("ATLoss", distill::ATLoss::from_args);
  registry.add("FTLoss", distill::FTLoss::from_args);
  registry.add("DistanceWiseRKD", distill::DistanceWiseRKD::from_args);
  registry.add("AngleWiseRKD", distill::AngleWiseRKD::from_args);
  registry.add("WSLD", distill::WSLD::from_args);
  registry.add("OFDLoss", distill::OFDLoss::from_args);
  registry.add("L1Loss", distill::L1Loss::from_args);
  registry.add("L2Loss", distill::L2Loss::from_args);
  registry.add("CRDLoss", distill::CRDLoss::from_args);
  registry.add("DISTLoss", distill::DISTLoss::from_args);
  registry.add("MGDLoss", distill::MGDLoss::from_args);
  registry.add("PKDLoss", distill::PKDLoss::from_args);
  registry.add("KDSoftCELoss", distill::KDSoftCELoss::from_args);
  registry.add("CrossEntropyLoss", distill::CrossEntropyLoss::from_args);
  registry.add("LabelCrossEntropy", distill::LabelCrossEntropy::from_args);
  registry.add("OnehotLikeLoss", distill::OnehotLikeLoss::from_args);
  registry.add("InformationEntropyLoss", distill::InformationEntropyLoss::from_args);
  registry.add("ActivationLoss", distill::ActivationLoss::from_args);
}

}  // namespace razor
