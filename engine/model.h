#pragma once
// What the runner needs of a model: a torch module with loss, predict and a train step.
// Architectures (components/) and algorithms (algorithms/) implement it.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "engine/data.h"
#include "engine/registry.h"

namespace razor {

class OptimWrapper;

/// A value of a model that parameter schedulers may drive besides the optimiser's (a loss
/// weight, a Gumbel temperature, a pruning ratio), by a dotted name.
struct ScheduledValue {
  std::function<double()> get;
  std::function<void(double)> set;
};
using ScheduledValues = std::vector<std::pair<std::string, ScheduledValue>>;

/// `values` with `prefix` before each name (a component's values under its child name).
inline ScheduledValues prefixed(const std::string& prefix, ScheduledValues values) {
  for (auto& item : values) item.first = prefix + item.first;
  return values;
}

/// Named losses and logged values, in order. Keys containing "loss" are summed into the
/// total that is optimised (MMEngine's parse_losses); other keys are only logged.
using LossMap = std::vector<std::pair<std::string, torch::Tensor>>;

/// Sum of the values whose key contains "loss" (each mean-reduced first).
torch::Tensor total_loss(const LossMap& losses);

class Model : public torch::nn::Module {
 public:
  /// Losses for a training batch.
  virtual LossMap loss(const Batch& batch) = 0;
  /// Scores (N x num_classes) for an evaluation batch.
  virtual torch::Tensor predict(const Batch& batch) = 0;
  /// Raw network output (no loss, no post-processing).
  virtual torch::Tensor forward_tensor(const torch::Tensor& inputs) = 0;

  /// One optimisation step: loss, backward, step through the wrapper. Algorithms with
  /// several forward passes per step (SPOS, AutoSlim, DARTS, QAT) override it.
  /// Returns the losses (detached) with "loss" (the total) appended.
  virtual LossMap train_step(const Batch& batch, OptimWrapper& optim);

  /// The child modules this model steps with optimisers of their own (the keys of an
  /// OptimWrapperDict, e.g. {"architecture", "generator"}); empty for a model trained with
  /// one optimiser. The runner checks the `optim_wrapper` table against it.
  virtual std::vector<std::string> optim_wrapper_names() const { return {}; }

  /// The values a `param_scheduler` entry may name with `param_name` besides lr, momentum
  /// and weight_decay (e.g. "distiller.distill_losses.loss_kd.loss_weight").
  virtual ScheduledValues scheduled_values() { return {}; }

  /// Whether a training step may leave some parameters without a gradient (a one-shot NAS
  /// step trains one path of the supernet). Multi-process training then finds the unused
  /// parameters each step (model_wrapper_cfg.find_unused_parameters defaults to this).
  virtual bool leaves_parameters_unused() const { return false; }

  /// State that is not a tensor of the model but must survive a resume (a NAS mutator's
  /// generator); checkpoints hold it as JSON. Null when there is none.
  virtual Json extra_state() const { return nullptr; }
  virtual void load_extra_state(const Json& /*state*/) {}
  /// What of that state the weights mean nothing without (a pruned model's kept channels):
  /// loading weights (load_from, `razor test/export CKPT`) applies it too, before the weights.
  virtual void load_weights_state(const Json& /*state*/) {}
};

/// "models": architectures, backbones, necks, heads and algorithms (MMEngine's MODELS).
Registry<torch::nn::Module>& model_registry();

/// Builds `args` from the model registry and checks it is a `T`.
template <class T>
std::shared_ptr<T> build_model_as(Args& args, const BuildContext& context, const char* what) {
  auto module = model_registry().build(args, context);
  auto typed = std::dynamic_pointer_cast<T>(module);
  if (!typed) {
    args.fail("type", "\"" + args.get<std::string>("type", "") + "\" cannot be used as " + what);
  }
  return typed;
}

}  // namespace razor
