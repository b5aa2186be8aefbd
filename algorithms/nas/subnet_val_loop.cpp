#include "algorithms/nas/subnet_val_loop.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/base_algorithm.h"
#include "components/nn/bn_calibration.h"
#include "engine/dist.h"
#include "engine/runner.h"
#include "engine/strings.h"

namespace razor {

SubnetValLoop::SubnetValLoop(Runner& runner, bool is_test, SubnetValOptions options)
    : EvalLoop(runner, is_test), options_(std::move(options)) {
  if (options_.estimate_resources) estimator_ = std::make_unique<ResourceEstimator>(options_.estimator);
}

Metrics SubnetValLoop::run() {
  auto* algorithm = dynamic_cast<BaseAlgorithm*>(&runner_.model());
  SubnetMutator* found = algorithm ? algorithm->subnet_mutator() : nullptr;
  RAZOR_CHECK(found, runner_.config().file, ": SubnetValLoop evaluates the subnets of a NAS or pruning algorithm "
              "(model.type = \"SPOS\", \"SlimmableNetwork\", ...)");
  SubnetMutator& mutator = *found;
  const Json saved = mutator.state();
  // Random subnets from a generator of this validation's own (seeded by the run's seed and
  // the epoch, equal on every rank): training's sequence of subnets does not depend on
  // whether or when it validates, so a resumed run samples what the uninterrupted one did.
  at::Generator generator = dist::shared_generator(runner_.seed(), 0x76616c00u + static_cast<uint64_t>(runner_.epoch()));
  // Validation leaves the supernet as it found it: the BN statistics the calibration
  // overwrites are put back afterwards (training, and a resumed run, continue from them).
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_buffers;
  if (options_.calibrate_sample_num > 0) {
    for (const auto& item : runner_.model().named_buffers()) {
      saved_buffers.emplace_back(item.value(), item.value().clone());
    }
  }
  Metrics all;
  int64_t random_index = 0;
  for (const auto& kind : options_.sample_kinds) {
    const std::string prefix =
        kind == "random" ? "random_subnet_" + std::to_string(random_index++) : kind + "_subnet";
    mutator.set_choices(mutator.sample_choices(kind, generator));
    if (options_.calibrate_sample_num > 0) {
      calibrate_bn_statistics(runner_.model(), runner_.train_dataloader(), options_.calibrate_sample_num,
                              [this](const Batch& b) { return runner_.to_device(b); },
                              /*across_ranks=*/true);
    }
    Metrics metrics = EvalLoop::run();
    for (const auto& item : metrics) all[prefix + "." + item.first] = item.second;
    if (estimator_) {
      const Resources r = estimator_->estimate(runner_.model());
      all[prefix + ".flops"] = r.flops;
      all[prefix + ".params"] = r.params;
    }
  }
  mutator.restore(saved);
  {
    torch::NoGradGuard no_grad;
    for (auto& [buffer, copy] : saved_buffers) buffer.copy_(copy);
  }
  report_subnets(all, "subnets", 3);
  return all;
}

void register_subnet_val_loop() {
  for (const bool is_test : {false, true}) {
    const std::string name = is_test ? "SubnetTestLoop" : "SubnetValLoop";
    loop_registry().add(name, [is_test](Args& args, const BuildContext& ctx) {
      RAZOR_ASSERT(ctx.runner);
      SubnetValOptions o;
      if (args.has("sample_kinds")) {
        o.sample_kinds = args.require<std::vector<std::string>>("sample_kinds");
        for (const auto& kind : o.sample_kinds) {
          if (kind != "max" && kind != "min" && kind != "random") {
            args.fail("sample_kinds", "each kind must be \"max\", \"min\" or \"random\", got \"" + kind + "\"");
          }
        }
      }
      o.calibrate_sample_num = args.get<int64_t>("calibrate_sample_num", o.calibrate_sample_num);
      o.estimate_resources = args.get<bool>("estimate_resources", true);
      if (args.has("estimator_cfg")) {
        Args estimator = args.sub("estimator_cfg");
        o.estimator = estimator_options_from(estimator);
      }
      return std::make_shared<SubnetValLoop>(*ctx.runner, is_test, o);
    });
  }
}

}  // namespace razor
