#include "engine/model.h"

#include <torch/torch.h>

#include "engine/optim_wrapper.h"

namespace razor {

torch::Tensor total_loss(const LossMap& losses) {
  torch::Tensor total;
  for (const auto& item : losses) {
    if (item.first.find("loss") == std::string::npos) continue;
    torch::Tensor value = item.second.mean();
    total = total.defined() ? total + value : value;
  }
  RAZOR_ASSERT(total.defined());
  return total;
}

LossMap Model::train_step(const Batch& batch, OptimWrapper& optim) {
  LossMap losses = loss(batch);
  torch::Tensor total = total_loss(losses);
  optim.update_params(total);
  LossMap logged;
  // The total goes under "loss"; a single loss already named "loss" is not listed twice.
  for (const auto& item : losses) {
    if (item.first != "loss") logged.emplace_back(item.first, item.second.detach().mean());
  }
  logged.emplace_back("loss", total.detach());
  return logged;
}

Registry<torch::nn::Module>& model_registry() {
  static Registry<torch::nn::Module> registry("models");
  return registry;
}

}  // namespace razor
