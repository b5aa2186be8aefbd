#pragma once
// The pieces every NAS algorithm's factory reads from its table: the supernet
// (`architecture`, fixed to `fix_subnet` when given) and the `mutator` (a NasMutator).
#include <memory>

#include "components/mutators/nas_mutator.h"
#include "engine/model.h"

namespace razor {

/// `mutator = {type = "NasMutator", custom_groups = [[...], ...]}`, seeded by the run's seed.
std::shared_ptr<NasMutator> build_nas_mutator(Args& args, const BuildContext& context);

/// The supernet of `architecture`, fixed to `fix_subnet` (a subnet YAML) when the table names
/// one.
std::shared_ptr<Model> build_nas_supernet(Args& args, const BuildContext& context);

}  // namespace razor
