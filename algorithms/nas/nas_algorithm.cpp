#include "algorithms/nas/nas_algorithm.h"

#include <torch/torch.h>

#include "components/mutators/fix_subnet.h"
#include "components/nn/batch_norm.h"

namespace razor {

NasAlgorithm::NasAlgorithm(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator)
    : BaseAlgorithm(std::move(architecture)), mutator_(register_module("mutator", std::move(mutator))) {
  nn::assign_paths(*architecture_);  // mutables are named from the architecture, as in MMRazor
  mutator_->prepare(*architecture_);
}

void NasAlgorithm::fix_subnet(const Json& subnet, const std::string& origin) {
  load_fix_subnet(*architecture_, subnet, origin);
  NasMutatorOptions options;
  options.create_arch_params = false;
  mutator_ = replace_module("mutator", std::make_shared<NasMutator>(options));
  mutator_->prepare(*architecture_);
}

SPOS::SPOS(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator,
           bool norm_training)
    : NasAlgorithm(std::move(architecture), std::move(mutator)), norm_training_(norm_training) {}

LossMap SPOS::loss(const Batch& batch) {
  mutator_->set_choices(mutator_->sample_choices("random"));
  return architecture_->loss(batch);
}

void SPOS::train(bool on) {
  NasAlgorithm::train(on);
  if (on || !norm_training_) return;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (dynamic_cast<nn::BatchNorm2d*>(module.get())) module->train(true);
  }
}

}  // namespace razor
