#pragma once
// Owns backward, gradient clipping, gradient accumulation and the optimiser step
// (MMEngine's OptimWrapper): algorithms call update_params(loss) and nothing else.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "engine/args.h"
#include "engine/registry.h"

namespace razor {

/// Gradient clipping as in torch.nn.utils.clip_grad_{norm,value}_.
struct ClipGradOptions {
  std::string type = "norm";  // "norm" or "value"
  double max_norm = 0.0;      // for "norm"; the clip value for "value"
  double norm_type = 2.0;
};

class GradientSync;

class OptimWrapper {
 public:
  OptimWrapper(std::shared_ptr<torch::optim::Optimizer> optimizer,
               std::vector<torch::Tensor> parameters, int64_t accumulative_counts = 1,
               std::optional<ClipGradOptions> clip_grad = std::nullopt);
  // Virtual for OptimWrapperDict (optim_wrapper_dict.h), which holds several wrappers.
  virtual ~OptimWrapper() = default;

  /// loss / accumulative_counts -> backward -> (every accumulative_counts calls, or at the
  /// last of `max_counts`) clip, step, zero_grad.
  virtual void update_params(const torch::Tensor& loss);
  /// Backward from `loss`; with a GradientSync attached and `sync`, the gradients are
  /// averaged over the ranks as they are produced (data_parallel.h).
  virtual void backward(const torch::Tensor& loss, bool sync = true);
  virtual void step();
  virtual void zero_grad();

  /// Call once before training with the total number of update_params calls, so that a
  /// last partial accumulation window still steps.
  virtual void initialize_count_status(int64_t inner_count, int64_t max_counts);
  int64_t inner_count() const { return inner_count_; }

  /// The gradient norm from the last clipping (-1 when not clipping).
  double last_grad_norm() const { return last_grad_norm_; }

  /// What checkpoints save and resume restore.
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }

  /// The value (e.g. "lr", "momentum", "weight_decay") of every param group.
  virtual std::vector<double> get(const std::string& name) const;
  virtual void set(const std::string& name, size_t group, double value);
  virtual size_t num_groups() const;

  /// Data parallelism: averages this optimiser's gradients over the ranks.
  void set_gradient_sync(std::shared_ptr<GradientSync> sync) { sync_ = std::move(sync); }

 private:
  std::shared_ptr<GradientSync> sync_;
  std::shared_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<torch::Tensor> parameters_;
  int64_t accumulative_counts_;
  std::optional<ClipGradOptions> clip_grad_;
  int64_t inner_count_ = 0;
  int64_t max_counts_ = -1;
  double last_grad_norm_ = -1.0;
};

/// Builds an OptimWrapper from an `optim_wrapper` table:
///   optimizer = { type = "SGD", lr = 0.1, momentum = 0.9, weight_decay = 5e-4, nesterov }
///   clip_grad = { max_norm = 10.0, norm_type = 2 } | { type = "value", clip_value = 1 }
///   accumulative_counts = 1
///   paramwise_cfg = { norm_decay_mult = 0.0, bias_decay_mult = 0.0, dwconv_decay_mult = 0.0,
///                     custom_keys = { "head" = { lr_mult = 0.1, decay_mult = 1.0 } } }
/// Optimisers: SGD, Adam, AdamW. Frozen parameters (requires_grad false) are left out.
/// With `constructor = "SeparateOptimWrapperConstructor"` the table instead holds one such
/// table per child module of `model` and builds an OptimWrapperDict (optim_wrapper_dict.h).
std::shared_ptr<OptimWrapper> build_optim_wrapper(Args& args, torch::nn::Module& model);

/// A parsed `optimizer` table: makes the torch optimiser once the parameter groups are known.
struct OptimizerSpec {
  double lr = 0.0;
  double weight_decay = 0.0;
  /// Options of one group with the given lr and weight decay (other fields from the table).
  std::function<std::unique_ptr<torch::optim::OptimizerOptions>(double lr, double weight_decay)>
      make_options;
  std::function<std::shared_ptr<torch::optim::Optimizer>(
      std::vector<torch::optim::OptimizerParamGroup>, const torch::optim::OptimizerOptions&)>
      make_optimizer;
};

/// "optimizers": SGD, Adam, AdamW.
Registry<OptimizerSpec>& optimizer_registry();
void register_optimizers();

}  // namespace razor
