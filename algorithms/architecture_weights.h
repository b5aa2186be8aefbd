#pragma once
// Loading trained weights into an algorithm's architecture before compressing it (a
// quantiser's float_checkpoint, a pruner's init_cfg): a plain checkpoint of the
// architecture, an algorithm's ("architecture.*", e.g. a distilled student), or a torch.save
// file, renamed as the config's revise_keys / checkpoint_mapping say.
#include <memory>
#include <string>

#include "engine/config.h"
#include "engine/model.h"

namespace razor {

/// Loads `path` into `architecture` (strict); errors name `where`. `config` gives the naming
/// options (null: none).
void load_architecture_weights(Model& architecture, const std::string& path, const std::shared_ptr<const Config>& config,
                               const std::string& where);

}  // namespace razor
