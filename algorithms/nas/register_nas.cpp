// Registers the NAS algorithms, and the search loops and hooks that need a mutator.
#include <memory>

#include "algorithms/nas/build_nas.h"
#include "algorithms/nas/darts.h"
#include "algorithms/nas/dsnas.h"
#include "algorithms/nas/estimate_resources_hook.h"
#include "algorithms/nas/evolution_search_loop.h"
#include "algorithms/nas/nas_algorithm.h"
#include "algorithms/nas/subnet_val_loop.h"
#include "components/mutators/fix_subnet.h"
#include "engine/model.h"

namespace razor {

void register_nas_algorithms() {
  static bool done = false;
  if (done) return;
  done = true;
  model_registry().add("SPOS", [](Args& args, const BuildContext& context) {
    auto architecture = build_nas_supernet(args, context);
    auto algorithm = std::make_shared<SPOS>(architecture, build_nas_mutator(args, context),
                                            args.get<bool>("norm_training", false));
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
  register_darts();
  register_dsnas();
  register_evolution_search_loop();
  register_subnet_val_loop();
  register_estimate_resources_hook();
}

}  // namespace razor
