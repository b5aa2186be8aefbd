#include "algorithms/pruning/slimmable_network.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/pruning/slimmable_val_loop.h"
#include "components/nn/module.h"
#include "engine/error.h"
#include "engine/optim_wrapper.h"

namespace razor {

SlimmableNetwork::SlimmableNetwork(std::shared_ptr<Model> architecture, std::unique_ptr<ChannelMutator> mutator,
                                   int64_t deploy_index, Runner* runner, ArchitectureBuilder build_copy)
    : ItePruneAlgorithm(std::move(architecture), std::move(mutator), ItePruneOptions{}, runner, std::move(build_copy)),
      deploy_index_(deploy_index) {
  subnets_ = this->mutator().subnets();
  const auto n = static_cast<int64_t>(subnets_.size());
  RAZOR_CHECK(deploy_index >= -1 && deploy_index < n, "SlimmableNetwork: deploy_index must be -1 (every subnet) or a "
              "subnet in [0, ", n, "), got ", deploy_index);
  for (int64_t i = 0; i < n; ++i) {
    set_subnet(static_cast<size_t>(i));
    spdlog::info("SlimmableNetwork: subnet {} keeps {:.2f}% of the FLOPs ({:.3f} M) and {:.2f}% of the params{}", i,
                 100 * flops_ratio(), flops_ratio() * full_flops() / 1e6, 100 * params_ratio(),
                 i == deploy_index ? " (deployed)" : "");
  }
  set_subnet(resting_subnet());
}

void SlimmableNetwork::set_subnet(size_t index) {
  mutator().set_choices(subnets_.at(index));
  update_ratios();
}

size_t SlimmableNetwork::resting_subnet() const {
  return is_deployed() ? static_cast<size_t>(deploy_index_) : subnets_.size() - 1;
}

std::string SlimmableNetwork::not_exportable_because() const {
  if (is_deployed()) return {};
  return "a SlimmableNetwork exports one of its " + std::to_string(subnets_.size()) +
         " subnets: set model.deploy_index to it";
}

LossMap SlimmableNetwork::train_step(const Batch& batch, OptimWrapper& optim) {
  if (is_deployed()) return BaseAlgorithm::train_step(batch, optim);
  LossMap logged;
  torch::Tensor total;
  for (size_t i = 0; i < subnets_.size(); ++i) {
    mutator().set_choices(subnets_[i]);
    const LossMap losses = BaseAlgorithm::train_step(batch, optim);
    const std::string prefix = "subnet_" + std::to_string(i) + ".";
    for (const auto& [key, value] : losses) {
      if (key == "loss") total = total.defined() ? total + value : value;
      logged.emplace_back(prefix + key, value);
    }
  }
  logged.emplace_back("loss", total);
  return logged;
}

void register_slimmable_network() {
  register_slimmable_val_loop();
  model_registry().add("SlimmableNetwork", [](Args& args, const BuildContext& context) {
    auto [architecture, build_copy] = build_architecture_to_prune(args, context, "SlimmableNetwork");
    ChannelMutatorOptions options = channel_mutator_options_from(args, "mutator", "SlimmableChannelMutator");
    const int64_t deploy_index = args.get<int64_t>("deploy_index", -1);
    auto algorithm = std::make_shared<SlimmableNetwork>(architecture, std::make_unique<ChannelMutator>(options),
                                                        deploy_index, context.runner, std::move(build_copy));
    nn::assign_paths(*algorithm);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
}

}  // namespace razor
