#include "algorithms/nas/estimate_resources_hook.h"

#include <spdlog/spdlog.h>

#include "algorithms/nas/nas_algorithm.h"
#include "engine/dist.h"
#include "engine/runner.h"
#include "engine/strings.h"

namespace razor {

EstimateResourcesHook::EstimateResourcesHook(int64_t interval, bool by_epoch,
                                             ResourceEstimatorOptions estimator, std::string subnet)
    : interval_(interval), by_epoch_(by_epoch), estimator_(std::move(estimator)),
      subnet_(std::move(subnet)) {
  RAZOR_CHECK(interval_ >= 1, "EstimateResourcesHook: interval must be >= 1, got ", interval_);
}

Resources EstimateResourcesHook::estimate(Runner& runner, int64_t count) {
  Model& model = runner.model();
  auto* nas = dynamic_cast<NasAlgorithm*>(&model);
  if (nas == nullptr || nas->mutator().search_groups().empty()) return estimator_.estimate(model);

  NasMutator& mutator = nas->mutator();
  const Json saved = mutator.current_choices();
  // Differentiable groups sample their argmax without drawing; one-shot groups take `subnet_`.
  at::Generator generator =
      dist::shared_generator(runner.seed(), 0x72657300u + static_cast<uint64_t>(count));
  Json choices = mutator.sample_choices("random", generator);
  if (subnet_ != "random") {
    const Json bounds = mutator.sample_choices(subnet_);
    for (const auto& group : mutator.search_groups()) {
      if (!group.arch_param.defined()) choices[group.key] = bounds[group.key];
    }
  }
  mutator.set_choices(choices);
  Resources resources;
  try {
    resources = estimator_.estimate(model);
  } catch (...) {
    mutator.set_choices(saved);
    throw;
  }
  mutator.set_choices(saved);
  return resources;
}

void EstimateResourcesHook::after_val_epoch(Runner& runner, const Metrics&) {
  const int64_t count = by_epoch_ ? runner.epoch() : runner.iter();
  if (count <= 0 || count % interval_ != 0) return;
  const Resources r = estimate(runner, count);
  const std::string& units = estimator_.options().units;
  std::string text = "Estimate model resources: flops " + format_number(r.flops, 6) + " " + units +
                     ", params " + format_number(r.params, 6) + " " + units;
  if (estimator_.options().measure_latency) text += ", latency " + format_number(r.latency, 4) + " ms";
  if (dist::is_main()) spdlog::info(text);
  Json record = {{"mode", "resources"},
                 {by_epoch_ ? "epoch" : "iter", count},
                 {"resources/flops", r.flops},
                 {"resources/params", r.params}};
  if (estimator_.options().measure_latency) record["resources/latency"] = r.latency;
  runner.log_scalars(record);
}

void register_estimate_resources_hook() {
  static bool done = false;
  if (done) return;
  done = true;
  hook_registry().add("EstimateResourcesHook", [](Args& args, const BuildContext&) {
    const int64_t interval = args.get<int64_t>("interval", 1);
    if (interval < 1) args.fail("interval", "must be >= 1");
    const bool by_epoch = args.get<bool>("by_epoch", true);
    ResourceEstimatorOptions estimator;
    if (args.has("estimator_cfg")) {
      Args estimator_args = args.sub("estimator_cfg");
      estimator = estimator_options_from(estimator_args);
    }
    const std::string subnet = args.get("subnet", "max");
    if (subnet != "max" && subnet != "min" && subnet != "random") {
      args.fail("subnet", "expected \"max\", \"min\" or \"random\", got \"" + subnet + "\"");
    }
    auto hook = std::make_shared<EstimateResourcesHook>(interval, by_epoch, estimator, subnet);
    hook->set_priority(parse_priority(args, "priority", kVeryLow));
    return hook;
  });
}

}  // namespace razor
