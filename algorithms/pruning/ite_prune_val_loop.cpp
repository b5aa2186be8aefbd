#include "algorithms/pruning/ite_prune_val_loop.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>

#include "algorithms/pruning/ite_prune_algorithm.h"
#include "engine/checkpoint.h"
#include "engine/runner.h"
#include "engine/version.h"

namespace razor {

namespace fs = std::filesystem;

void write_fix_subnet(const ItePruneAlgorithm& pruner, const std::string& dir) {
  const auto cut = pruner.static_architecture();
  fs::create_directories(dir);
  const std::string subnet = (fs::path(dir) / "fix_subnet.json").string();
  const std::string weights = (fs::path(dir) / "fix_subnet_weight.pth").string();
  // Weights first: a fix_subnet.json never names channels its weights file lacks.
  CheckpointContents contents;
  contents.meta = {{"format", kCheckpointFormat}, {"razor_version", kVersion}, {"fix_subnet", subnet},
                   {"epoch", 0}, {"iter", 0}};
  contents.model = state_dict(*cut);
  write_checkpoint(weights, contents, nullptr);
  write_file_atomically(subnet, pruner.mutator().to_config().dump(4) + "\n");
}

Metrics ItePruneValLoop::run() {
  auto* pruner = dynamic_cast<ItePruneAlgorithm*>(&runner_.model());
  RAZOR_CHECK(pruner, runner_.config().file,
              ": ItePruneValLoop validates a pruning algorithm (model.type = \"ItePruneAlgorithm\")");
  Metrics metrics = EvalLoop::run();
  if (runner_.write_files()) {
    write_fix_subnet(*pruner, runner_.work_dir());
    spdlog::info("ItePruneValLoop: the pruned model ({:.2f}% of the FLOPs, {:.2f}% of the params) is in {}/"
                 "fix_subnet.json and fix_subnet_weight.pth",
                 100 * pruner->flops_ratio(), 100 * pruner->params_ratio(), runner_.work_dir());
  }
  return metrics;
}

void register_ite_prune_val_loop() {
  loop_registry().add("ItePruneValLoop", [](Args&, const BuildContext& ctx) {
    RAZOR_ASSERT(ctx.runner);
    return std::make_shared<ItePruneValLoop>(*ctx.runner, /*is_test=*/false);
  });
}

}  // namespace razor
