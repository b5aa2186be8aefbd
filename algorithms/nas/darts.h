#pragma once
// DARTS (MMRazor's Darts, Liu et al. 2019): a supernet of DiffMutableOPs and
// DiffChoiceRoutes whose architecture parameters α (owned by the NasMutator) and weights w are
// trained in alternation on two halves of the training set. Each iteration gets a supernet
// batch (for w) and a mutator batch (for α) from DartsEpochBasedTrainLoop, which hands the
// mutator batch over with `set_mutator_batch` before the train step.
//
//   first order (unroll = false): α ← α − step(∇α L_val(w, α)); then w ← SGD step on L_train.
//   second order (unroll = true): α's gradient is that of L_val(w', α) with the weights after
//     one virtual SGD step w' = w − ξ(μ·m + ∇w L_train(w, α) + λ·w) (ξ the current lr, μ the
//     momentum, m the momentum buffer, λ the weight decay):
//       ∇α L_val(w', α) − ξ · ∇²α,w L_train(w, α) · ∇w' L_val(w', α),
//     the Hessian-vector product by central differences at w ± ε·∇w' L_val, ε = 0.01/‖∇w'‖.
//
// Where razor departs from MMRazor's code (on purpose):
// - MMRazor's virtual step rebinds a local variable, so it is a no-op (w' = w); razor steps
//   the weights for real (on a copy restored afterwards).
// - MMRazor assigns the corrected gradient `dα − ξ·hessian` to the architecture's parameters
//   (it zips them with the α gradients), not to α; razor assigns it to α.
// - MMRazor's first-order α step leaves ∇w L_val in the weights' gradients, which its weight
//   step then adds to ∇w L_train; razor clears them first.
// - The forward passes of one unrolled step replay the same random state (drop path masks),
//   so that the finite differences difference the same function.
// With per-group learning rates (paramwise_cfg), each group's ξ scales its part of the
// direction; with one lr this is exactly the formula above.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "algorithms/nas/nas_algorithm.h"
#include "engine/optim_wrapper.h"

namespace razor {

struct DartsOptions {
  /// Second-order (unrolled) α gradients; first order when false.
  bool unroll = false;
  /// BatchNorms keep batch statistics in eval mode (MMRazor's norm_training).
  bool norm_training = false;
};

class Darts : public NasAlgorithm {
 public:
  Darts(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator,
        DartsOptions options = {});

  /// {"architecture", "mutator"} while searching; none once the mutator has no α (a fixed
  /// subnet is retrained with one optimiser).
  std::vector<std::string> optim_wrapper_names() const override;
  /// Every candidate of every edge runs in the mixture.
  bool leaves_parameters_unused() const override { return false; }

  /// The batch of the next train_step's α update (already on the device).
  void set_mutator_batch(Batch batch) { mutator_batch_ = std::move(batch); }
  bool has_mutator_batch() const { return mutator_batch_.has_value(); }

  /// One DARTS iteration: the α step on the mutator batch (taken, so each batch serves once),
  /// then the weight step on `batch`. Without a mutator batch, or without α, one weight step.
  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;
  void train(bool on = true) override;

  /// The second-order gradient of the validation loss with respect to every α (in the
  /// mutator's order), computed with the `architecture` optimiser's lr, momentum (buffers)
  /// and weight decay; the weights are left as they were. Public for tests.
  std::vector<torch::Tensor> unrolled_arch_grads(const Batch& supernet_batch,
                                                 const Batch& mutator_batch,
                                                 OptimWrapper& architecture_optim,
                                                 torch::Tensor* val_loss = nullptr);
  /// ∇α L_val(w, α) (first order). Public for tests.
  std::vector<torch::Tensor> arch_grads(const Batch& mutator_batch,
                                        torch::Tensor* val_loss = nullptr);

  const DartsOptions& options() const { return options_; }

 private:
  DartsOptions options_;
  std::optional<Batch> mutator_batch_;
};

/// Registers the Darts algorithm, DartsEpochBasedTrainLoop and DumpSubnetHook.
void register_darts();

}  // namespace razor
