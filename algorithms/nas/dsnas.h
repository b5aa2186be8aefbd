#pragma once
// DSNAS (MMRazor's DSNAS, Hu et al. 2020, "Direct Neural Architecture Search without
// Parameter Retraining"): a supernet of OneHotMutableOPs whose weights w and architecture
// parameters α (owned by the NasMutator) train together, then the argmax subnet trains on:
//
//   every step, while a supernet: each free mutable fixes itself when its top-1 − top-2
//     probability reaches fix_threshold, else draws a one-hot Z ~ Categorical(softmax α) from
//     the mutator's generator (the same on every rank); the supernet loss L steps the weights
//     ("architecture" optimiser).
//   pretrain_epochs <= epoch < finetune_epochs: the mutator loss
//       arch_loss  = Σ_m log(Z_m · softmax α_m) / W                       (W = world size)
//       flops_loss = 1e-2 · Σ_m p_m[k_m] · FLOPs(chosen op of m) / W, only when the sampled
//                    subnet's FLOPs ≥ flops_constraints (estimator units, M by default)
//     and α steps ("mutator" optimiser) with the gradient
//       ∇α = Σ_m s_m · ∇α log p_m[k_m] / W + ∇α flops_loss,   s_m = Σ_i ∂L/∂Z_m,i,
//     summed over the ranks (so it is the ranks' mean), which keeps α equal on every rank.
//   epoch == finetune_epochs (the first step of an epoch >= finetune_epochs, once): α is
//     broadcast from rank 0 and every mutable is fixed to its argmax; from then on the subnet
//     trains with the "architecture" optimiser alone.
//
// Per-candidate FLOPs come from the ResourceEstimator once (each candidate counted on the
// input its mutable sees), not per step; a subnet's FLOPs are the shared part plus its
// chosen candidates, as the estimator counts the fixed subnet.
//
// Where razor departs from MMRazor's code (on purpose):
// - handle_grads: MMRazor multiplies α's gradient by Σ ∂L/∂Z *after* its mutator
//   update_params, i.e. after the step and zero_grad, so the multiplication changes nothing
//   and α steps on the plain ∇α(arch_loss + flops_loss), which only lowers the probability of
//   whatever was sampled. razor scales before the step, which is DSNAS's estimator.
// - The multiplier is Σ ∂L/∂Z of the supernet loss only. MMRazor's Z gradient would also hold
//   the arch loss's own ∂/∂Z (1/p_k), since it never clears it between the two backwards.
// - Only the score term is scaled; the FLOPs term is a direct penalty on α (scaled by the
//   task-loss derivative, whose sign is arbitrary, it would as often favour larger ops).
// - With several mutables in one search group, each mutable's term is scaled by its own
//   multiplier (MMRazor multiplies the shared gradient by every member's in turn).
// - A mutable fixed during the search (fix_threshold) leaves the mutator loss: its op is no
//   longer sampled. MMRazor keeps it, at the wrong index (its fix keeps choices[1], so the
//   one-hot weights then index the shrunk candidate list).
// - The per-candidate FLOPs table counts every candidate; MMRazor's counts the supernet in
//   one sampled forward, so candidates that were not sampled then count 0 FLOPs.
// - α's step applies the mutator optimiser's clip_grad but not accumulative_counts (one α
//   step per iteration).
//
//   [model]
//   type = "DSNAS"
//   pretrain_epochs = 15
//   finetune_epochs = 80
//   flops_constraints = 300.0
//   estimator_cfg = { input_shape = [1, 3, 224, 224] }
//   norm_training = false
//   mutator = { type = "NasMutator" }
//   architecture = { ... OneHotMutableOPs ... }
//
// What must survive --resume goes through the checkpoint: α (a parameter of the mutator),
// the mutator's generator, and which mutables are fixed and whether the finetune stage began
// (extra_state, restored before the weights since fixing drops candidates).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/nas/nas_algorithm.h"
#include "components/estimators/resource_estimator.h"
#include "components/mutables/mutable_op.h"
#include "engine/optim_wrapper.h"

namespace razor {

struct DSNASOptions {
  /// Epochs of supernet training before α starts to learn.
  int64_t pretrain_epochs = 15;
  /// The epoch at which the architecture is fixed to argmax α and the subnet trains on.
  int64_t finetune_epochs = 80;
  /// The FLOPs loss applies when the sampled subnet has at least this many FLOPs (estimator
  /// units).
  double flops_constraints = 300.0;
  /// The estimator of the FLOPs table (input shape, units).
  ResourceEstimatorOptions estimator;
  /// BatchNorms keep batch statistics in eval mode (MMRazor's norm_training).
  bool norm_training = false;

  // clang-format off
  DSNASOptions& with_pretrain_epochs(int64_t v) { pretrain_epochs = v; return *this; }
  DSNASOptions& with_finetune_epochs(int64_t v) { finetune_epochs = v; return *this; }
  DSNASOptions& with_flops_constraints(double v) { flops_constraints = v; return *this; }
  DSNASOptions& with_estimator(ResourceEstimatorOptions v) {
    estimator = std::move(v); return *this;
  }
  DSNASOptions& with_norm_training(bool v) { norm_training = v; return *this; }
  // clang-format on
};

class DSNAS : public NasAlgorithm {
 public:
  /// The FLOPs loss coefficient (MMRazor's flops_loss_coef).
  static constexpr double kFlopsLossCoef = 1e-2;

  /// Every free mutable of `architecture` must be a OneHotMutableOP (a config error
  /// otherwise); `pretrain_epochs < finetune_epochs`.
  DSNAS(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator,
        DSNASOptions options = {});

  /// {"architecture", "mutator"} while α exists; none for a subnet fixed in the config.
  std::vector<std::string> optim_wrapper_names() const override;
  /// One DSNAS iteration (see the top of this file).
  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;
  void train(bool on = true) override;

  Json extra_state() const override;
  void load_extra_state(const Json& state) override;

  /// Where the current epoch comes from (the runner's train loop; 0 when unset).
  void set_epoch_source(std::function<int64_t()> source) { epoch_source_ = std::move(source); }
  int64_t current_epoch() const { return epoch_source_ ? epoch_source_() : 0; }
  /// pretrain_epochs <= epoch < finetune_epochs.
  bool need_update_mutator(int64_t epoch) const;
  /// False once the architecture is fixed for the finetune stage.
  bool is_supernet() const { return is_supernet_; }

  /// Fixes the confident mutables and draws one-hot weights for the others (what each
  /// search step does first).
  void sample_subnet();
  /// MMRazor's compute_mutator_loss on the current sample: {"arch_loss"} and, when the
  /// sampled subnet reaches flops_constraints, {"flops_loss"}; both divided by the world size.
  LossMap mutator_loss();
  /// FLOPs of the sampled subnet (fixed mutables count their op), in estimator units.
  double subnet_flops();
  /// FLOPs of candidate `choice` of the mutable `name` (relative to the architecture), in
  /// estimator units.
  double candidate_flops(const std::string& name, const std::string& choice);
  /// Broadcasts α from rank 0 and fixes every mutable to its argmax (the finetune stage).
  void fix_architecture();

  const DSNASOptions& options() const { return options_; }

 private:
  struct OneHot {
    std::string name;  // relative to the architecture
    OneHotMutableOP* op;
  };
  struct MutatorTerms {
    torch::Tensor arch_loss;   // Σ log p[k] / W
    torch::Tensor flops_loss;  // undefined unless applied
    torch::Tensor surrogate;   // whose α gradient is the DSNAS gradient; undefined if none
    double subnet_flops = 0;
  };

  void build_flops_table();
  double raw_candidate_flops(size_t mutable_index, const std::string& choice) const;
  double raw_subnet_flops() const;
  MutatorTerms mutator_terms();
  LossMap update_arch_params(OptimWrapper& mutator_optim);

  DSNASOptions options_;
  ResourceEstimator estimator_;
  std::vector<OneHot> one_hot_;
  std::map<const OneHotMutableOP*, size_t> index_of_;
  std::function<int64_t()> epoch_source_;
  bool is_supernet_ = true;

  bool flops_ready_ = false;
  double base_raw_flops_ = 0;                             // FLOPs outside every mutable
  std::vector<std::map<std::string, double>> raw_flops_;  // per mutable, per candidate
};

/// Registers DSNAS in model_registry().
void register_dsnas();

}  // namespace razor
