#pragma once
// Several optimisers in one run, one per child module of the model (MMEngine's
// OptimWrapperDict, built by MMRazor's SeparateOptimWrapperConstructor). Algorithms that
// take several optimisation steps per iteration (data-free distillation: the generator and
// the student; DARTS: the architecture and the mutator) pick a wrapper by name:
//
//   [optim_wrapper]
//   constructor = "SeparateOptimWrapperConstructor"
//   architecture = { optimizer = { type = "AdamW", lr = 0.1 } }
//   generator = { optimizer = { type = "AdamW", lr = 1e-3 }, clip_grad = { max_norm = 5 } }
//
// Each key other than `constructor` names a child module of the model (`model.architecture`,
// `model.generator`) and holds an ordinary optim_wrapper table, built over that child's
// parameters only. To the runner the dict is one OptimWrapper: param schedulers see the
// param groups of every optimiser in turn (so each scheduler applies to all of them), and
// checkpoints save each optimiser's state under its name.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/optim_wrapper.h"

namespace razor {

inline constexpr const char* kDefaultOptimWrapperConstructor = "DefaultOptimWrapperConstructor";
inline constexpr const char* kSeparateOptimWrapperConstructor = "SeparateOptimWrapperConstructor";

class OptimWrapperDict : public OptimWrapper {
 public:
  using Item = std::pair<std::string, std::shared_ptr<OptimWrapper>>;

  /// `wrappers` in config order; names are unique.
  explicit OptimWrapperDict(std::vector<Item> wrappers);

  /// The wrapper called `name`; an unknown name is a config error listing the known ones.
  OptimWrapper& at(const std::string& name) const;
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::vector<Item>& items() const { return wrappers_; }

  /// One optimiser's operations: errors here, since the model must say which optimiser
  /// steps (MMEngine raises NotImplementedError for them too).
  void update_params(const torch::Tensor& loss) override;
  void backward(const torch::Tensor& loss, bool sync = true) override;
  void step() override;
  /// Clears the gradients of every optimiser.
  void zero_grad() override;
  void initialize_count_status(int64_t inner_count, int64_t max_counts) override;

  /// The param groups of every wrapper, in order: a scheduler applies to each optimiser.
  std::vector<double> get(const std::string& name) const override;
  void set(const std::string& name, size_t group, double value) override;
  size_t num_groups() const override;

 private:
  std::vector<Item> wrappers_;
};

/// Builds an OptimWrapperDict from a `constructor = "SeparateOptimWrapperConstructor"` table
/// (build_optim_wrapper calls it). A key that is not a child module of `model`, or a child
/// without trainable parameters, is a config error naming the key.
std::shared_ptr<OptimWrapperDict> build_optim_wrapper_dict(Args& args, torch::nn::Module& model);

/// Checks an `optim_wrapper` table against the optimisers a model steps (Model::
/// optim_wrapper_names): none wants an ordinary table, some want a
/// SeparateOptimWrapperConstructor table with exactly those keys. `model_type` is for the
/// messages.
void check_optim_wrapper_names(Args& args, const std::vector<std::string>& names,
                               const std::string& model_type);

/// `optim` as an OptimWrapperDict, for algorithms with several optimisers; a config error
/// naming `who` when the run built a single optimiser.
OptimWrapperDict& as_optim_wrapper_dict(OptimWrapper& optim, const std::string& who);

}  // namespace razor
