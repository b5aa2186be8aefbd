#pragma once
// Small helpers shared by the distillation losses: reading their inputs, validating choice
// options once at construction, and the torch-style reductions.
#include <string>
#include <vector>

#include <torch/types.h>

#include "components/distill/distill_loss.h"
#include "engine/args.h"

namespace razor::distill {

/// The input `name`; absent is an error naming the loss and the argument (the distiller
/// checks required arguments before calling, so this only fires for code-built calls).
const torch::Tensor& loss_input(const LossInputs& inputs, const std::string& name,
                                const std::string& loss);

/// The input `name`, or an undefined tensor when it was left out.
torch::Tensor optional_input(const LossInputs& inputs, const std::string& name);

/// Reads option `key` (default `fallback`) and checks it is one of `choices`; anything else
/// is a config error naming the key and listing the choices.
std::string read_choice(Args& args, const std::string& key, const std::string& fallback,
                        const std::vector<std::string>& choices);

/// The same check for code-built options ("KLDivergence: reduction must be one of ...").
void check_choice(const std::string& loss, const std::string& key, const std::string& value,
                  const std::vector<std::string>& choices);

/// Reduces an elementwise loss as torch does: "none", "sum", "mean" (over all elements) or
/// "batchmean" (the sum divided by the size of dimension 0).
torch::Tensor reduce_loss(const torch::Tensor& elementwise, const std::string& reduction);

}  // namespace razor::distill
