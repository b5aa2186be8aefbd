#pragma once
// How the tensor names of a checkpoint written by another tool become the model's: MMEngine's
// `revise_keys` (regular-expression rewrites), then a name mapping of a tool whose
// architectures razor shares (torchvision, mmcls), chosen by `checkpoint_mapping`.
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "engine/config.h"
#include "engine/pytorch_file.h"

namespace razor {

/// The config's top-level `checkpoint_key`, `revise_keys` and `checkpoint_mapping`; they apply
/// to every checkpoint a run reads for weights (load_from, CHECKPOINT arguments,
/// float_checkpoint, teacher_ckpt, --checkpoint).
struct CheckpointNaming {
  /// The entry of a torch.save dict that holds the state dict; "" finds it.
  std::string checkpoint_key;
  /// [regex, replacement] pairs applied in order to every name (ECMAScript patterns, which
  /// read Python's usual ones the same; Python's \1 and \g<1> in replacements become $1).
  std::vector<std::pair<std::string, std::string>> revise_keys = {{"^module\\.", ""}};
  /// "auto" (the mapping that fits the model best, or none), "none", or a registered mapping.
  std::string mapping = "auto";

  /// Errors name the file that set the key at fault.
  static CheckpointNaming from_config(const Config& config);
};

/// For each of `model`'s tensors that another tool names, razor's name -> that tool's; empty
/// when the tool does not have `model`'s architecture.
using NameMapping = std::function<std::map<std::string, std::string>(const torch::nn::Module& model)>;

/// Registers a mapping under `name` (once, from register_all()).
void register_name_mapping(const std::string& name, NameMapping mapping);
/// The registered names, sorted.
std::vector<std::string> name_mapping_names();

/// `tensors`, read from `origin`, renamed for `model`: revise_keys, then the mapping (under
/// "auto", the registered mapping that puts the most of `model`'s tensors in place with their
/// shapes, if it beats the names as they are; the choice is logged).
StateDict rename_for_model(StateDict tensors, const torch::nn::Module& model, const CheckpointNaming& naming,
                           const std::string& origin);

/// `model`'s `tensors` under `mapping`'s names ("razor": as they are). A tensor the mapping
/// has no name for is a config error naming it.
StateDict rename_for_tool(const StateDict& tensors, const torch::nn::Module& model, const std::string& mapping);

}  // namespace razor
