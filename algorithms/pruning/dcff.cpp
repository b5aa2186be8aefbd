#include "algorithms/pruning/dcff.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>

#include "components/channel/dcff_channel_unit.h"
#include "components/nn/module.h"
#include "engine/error.h"

namespace razor {

double dcff_temperature(int64_t cur, int64_t max) {
  constexpr double t_s = 1, t_e = 10000, k = 1;
  const double m = static_cast<double>(std::max<int64_t>(max, 1));
  const double a = 2 * (t_e - t_s) * (1 + std::exp(-k * m)) / (1 - std::exp(-k * m));
  const double t = a / (1 + std::exp(-k * static_cast<double>(cur))) + t_s - a / 2;
  return 1 / t;
}

namespace {

/// The base's options: one prune time (DCFF keeps its own count), the target given.
ItePruneOptions base_options(ItePruneOptions options) {
  options.prune_times = 1;
  options.linear_schedule = false;
  return options;
}

}  // namespace

DCFF::DCFF(std::shared_ptr<Model> architecture, std::unique_ptr<ChannelMutator> mutator, ItePruneOptions options,
           Runner* runner, ArchitectureBuilder build_copy)
    : ItePruneAlgorithm(std::move(architecture), std::move(mutator), base_options(options), runner,
                        std::move(build_copy)),
      prune_times_(options.prune_times) {
  RAZOR_CHECK(prune_times_ >= 0, "DCFF: prune_times must be 0 (every step_freq) or positive, got ", prune_times_);
  for (const auto& unit : this->mutator().units()) {
    RAZOR_CHECK(dynamic_cast<const channel::DCFFChannelUnit*>(unit.get()), unit->name(), ": DCFF fuses filters in ",
                "DCFFChannelUnits (mutator_cfg.type = \"DCFFChannelMutator\"), not in a ", unit->type());
  }
  target_ = this->options().target;
}

int64_t DCFF::prune_times(int64_t max_iters, int64_t step) const {
  return prune_times_ > 0 ? prune_times_ : std::max<int64_t>(1, max_iters / step);
}

void DCFF::calc_information(double tau) {
  for (const auto& unit : mutator().units()) static_cast<channel::DCFFChannelUnit&>(*unit).calc_information(tau);
}

LossMap DCFF::train_step(const Batch& batch, OptimWrapper& optim) {
  const int64_t at = iteration();
  const int64_t step = step_in_iterations();
  const int64_t times = prune_times(max_iterations(), step);
  if (!target_.empty() && at % step == 0 && at / step < times) {
    const bool first = at / step == 0;
    if (first) mutator().set_choices(target_);
    const double tau = dcff_temperature(at / step, times);
    calc_information(tau);
    spdlog::info("DCFF: filters fused at temperature {:.4g} (prune {} of {}, iteration {})", tau, at / step + 1, times,
                 at);
    if (first) report();
  }
  count_iteration();
  LossMap losses = BaseAlgorithm::train_step(batch, optim);
  losses.emplace_back("flops_ratio", torch::tensor(flops_ratio()));
  losses.emplace_back("params_ratio", torch::tensor(params_ratio()));
  return losses;
}

}  // namespace razor

namespace razor {

void register_dcff() {
  model_registry().add("DCFF", [](Args& args, const BuildContext& context) {
    auto [architecture, build_copy] = build_architecture_to_prune(args, context, "DCFF");
    auto mutator =
        std::make_unique<ChannelMutator>(channel_mutator_options_from(args, "mutator_cfg", "DCFFChannelMutator"));
    ItePruneOptions defaults;
    defaults.prune_times = 0;
    defaults.linear_schedule = false;
    auto algorithm = std::make_shared<DCFF>(architecture, std::move(mutator), ite_prune_options_from(args, defaults),
                                            context.runner, std::move(build_copy));
    nn::assign_paths(*algorithm);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
}

}  // namespace razor
