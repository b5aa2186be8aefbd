#include "algorithms/architecture_weights.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>

#include "engine/checkpoint.h"
#include "engine/checkpoint_names.h"
#include "engine/error.h"

namespace razor {

void load_architecture_weights(Model& architecture, const std::string& path, const std::shared_ptr<const Config>& config,
                               const std::string& where) {
  RAZOR_CHECK(std::filesystem::exists(path), where, ": checkpoint not found: ", path);
  const CheckpointNaming naming = config ? CheckpointNaming::from_config(*config) : CheckpointNaming{};
  CheckpointReader reader(path, naming.checkpoint_key);
  StateDict weights = reader.contents().model;
  const std::string prefix = "architecture.";
  const bool from_algorithm = std::any_of(weights.begin(), weights.end(), [&](const auto& item) {
    return item.first.rfind(prefix, 0) == 0;
  });
  if (from_algorithm) {
    StateDict stripped;
    for (const auto& item : weights) {
      if (item.first.rfind(prefix, 0) == 0) stripped.emplace_back(item.first.substr(prefix.size()), item.second);
    }
    weights = std::move(stripped);
  }
  weights = rename_for_model(std::move(weights), architecture, naming, path);
  try {
    load_state_dict(architecture, weights, /*strict=*/true, path);
  } catch (const Error& e) {
    throw e.with_context(where + ": the checkpoint does not fit model.architecture");
  }
}

}  // namespace razor
