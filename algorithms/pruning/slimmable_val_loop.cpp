#include "algorithms/pruning/slimmable_val_loop.h"

#include <spdlog/spdlog.h>

#include "algorithms/pruning/slimmable_network.h"
#include "engine/runner.h"
#include "engine/strings.h"

namespace razor {

Metrics SlimmableValLoop::run() {
  auto* slimmable = dynamic_cast<SlimmableNetwork*>(&runner_.model());
  RAZOR_CHECK(slimmable, runner_.config().file,
              ": SlimmableValLoop evaluates the subnets of a slimmable network (model.type = \"SlimmableNetwork\")");
  Metrics all;
  for (size_t i = 0; i < slimmable->subnets().size(); ++i) {
    if (slimmable->is_deployed() && static_cast<int64_t>(i) != slimmable->deploy_index()) continue;
    slimmable->set_subnet(i);
    const std::string prefix = "subnet_" + std::to_string(i) + ".";
    for (const auto& [key, value] : EvalLoop::run()) all[prefix + key] = value;
    all[prefix + "flops_ratio"] = slimmable->flops_ratio();
    all[prefix + "params_ratio"] = slimmable->params_ratio();
  }
  slimmable->set_subnet(slimmable->resting_subnet());
  report_subnets(all, "the slimmable subnets", 4);
  return all;
}

void register_slimmable_val_loop() {
  for (const bool is_test : {false, true}) {
    loop_registry().add(is_test ? "SlimmableTestLoop" : "SlimmableValLoop", [is_test](Args&, const BuildContext& ctx) {
      RAZOR_ASSERT(ctx.runner);
      return std::make_shared<SlimmableValLoop>(*ctx.runner, is_test);
    });
  }
}

}  // namespace razor
