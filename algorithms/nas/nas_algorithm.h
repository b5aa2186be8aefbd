#pragma once
// The base of NAS algorithms: a supernet (the `architecture`) and the NasMutator over it
// (child "mutator"). Search loops and subnet tools need only this.
#include <memory>
#include <string>

#include "algorithms/base_algorithm.h"
#include "components/mutators/nas_mutator.h"

namespace razor {

class NasAlgorithm : public BaseAlgorithm {
 public:
  /// Prepares `mutator` over `architecture` (after any subnet was fixed in it).
  NasAlgorithm(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator);

  NasMutator& mutator() { return *mutator_; }
  SubnetMutator* subnet_mutator() override { return mutator_.get(); }
  /// One path of the supernet is trained per step.
  bool leaves_parameters_unused() const override { return true; }

  /// Fixes the supernet to `subnet` (dropping unchosen candidates) and re-forms the mutator's
  /// search groups over what is left free.
  void fix_subnet(const Json& subnet, const std::string& origin);

  /// The mutator's generator, so that a resumed run samples the subnets the uninterrupted
  /// run would have.
  Json extra_state() const override { return Json{{"mutator_generator", mutator_->generator_state()}}; }
  void load_extra_state(const Json& state) override {
    if (state.contains("mutator_generator")) mutator_->set_generator_state(state["mutator_generator"].get<std::string>());
  }

 protected:
  std::shared_ptr<NasMutator> mutator_;
};

/// Single-path one-shot NAS (MMRazor's SPOS): each training loss samples one subnet
/// uniformly (the same one on every rank: the mutator's generator is seeded identically)
/// and runs it. With `norm_training`, BatchNorm keeps batch statistics in eval mode, as
/// MMRazor's search without BN calibration does.
class SPOS : public NasAlgorithm {
 public:
  SPOS(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator,
       bool norm_training = false);

  LossMap loss(const Batch& batch) override;
  void train(bool on = true) override;
  bool norm_training() const { return norm_training_; }

 private:
  bool norm_training_;
};

/// Registers SPOS and the NAS loops and hooks.
void register_nas_algorithms();

}  // namespace razor
