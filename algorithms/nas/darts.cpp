#include "algorithms/nas/darts.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <mutex>

#include "algorithms/nas/build_nas.h"
#include "algorithms/nas/darts_loop.h"
#include "components/nn/batch_norm.h"
#include "engine/dist.h"
#include "engine/optim_wrapper_dict.h"

namespace razor {

namespace {

/// d loss / d inputs, zeros for inputs the loss does not reach.
std::vector<torch::Tensor> darts_gradients(const torch::Tensor& loss,
                                           const std::vector<torch::Tensor>& inputs) {
  auto grads = torch::autograd::grad({loss}, inputs, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) grads[i] = torch::zeros_like(inputs[i]);
  }
  return grads;
}

/// The mean over the ranks (every rank then takes the same virtual step and α gradient).
void darts_average(std::vector<torch::Tensor>& tensors) {
  const int world = dist::world_size();
  if (world == 1 || tensors.empty()) return;
  dist::all_reduce(tensors);
  for (auto& t : tensors) t.div_(static_cast<double>(world));
}

/// One weight of the architecture optimiser with its group's SGD settings.
struct DartsWeight {
  torch::Tensor param;
  double lr, momentum, weight_decay;
  torch::Tensor momentum_buffer;  // undefined before the first step
};

std::vector<DartsWeight> darts_weights(OptimWrapper& optim) {
  torch::optim::Optimizer& optimizer = optim.optimizer();
  std::vector<DartsWeight> out;
  for (auto& group : optimizer.param_groups()) {
    auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options());
    RAZOR_CHECK(sgd != nullptr,
                "Darts: unroll = true takes an SGD optimizer in optim_wrapper.architecture (the "
                "virtual step is an SGD step); use unroll = false for other optimizers");
    RAZOR_CHECK(!sgd->nesterov() && sgd->dampening() == 0,
                "Darts: unroll = true takes plain SGD momentum in optim_wrapper.architecture "
                "(no nesterov, dampening 0)");
    for (const auto& p : group.params()) {
      DartsWeight w{p, sgd->lr(), sgd->momentum(), sgd->weight_decay(), {}};
      auto it = optimizer.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it != optimizer.state().end()) {
        auto& state = static_cast<torch::optim::SGDParamState&>(*it->second);
        w.momentum_buffer = state.momentum_buffer();
      }
      out.push_back(std::move(w));
    }
  }
  return out;
}

/// The CPU generator's state, to replay the same random draws (drop path) in several
/// forward passes.
class DartsRandomReplay {
 public:
  DartsRandomReplay() : generator_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    state_ = generator_.get_state();
  }
  void replay() {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_state(state_);
  }

 private:
  at::Generator generator_;
  torch::Tensor state_;
};

}  // namespace

Darts::Darts(std::shared_ptr<Model> architecture, std::shared_ptr<NasMutator> mutator,
             DartsOptions options)
    : NasAlgorithm(std::move(architecture), std::move(mutator)), options_(options) {}

std::vector<std::string> Darts::optim_wrapper_names() const {
  if (!mutator_->has_arch_params()) return {};
  return {"architecture", "mutator"};
}

void Darts::train(bool on) {
  NasAlgorithm::train(on);
  if (on || !options_.norm_training) return;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (dynamic_cast<nn::BatchNorm2d*>(module.get())) module->train(true);
  }
}

std::vector<torch::Tensor> Darts::arch_grads(const Batch& mutator_batch, torch::Tensor* val_loss) {
  const torch::Tensor loss_val = total_loss(loss(mutator_batch));
  auto grads = darts_gradients(loss_val, mutator_->arch_params());
  darts_average(grads);
  if (val_loss) *val_loss = loss_val.detach();
  return grads;
}

std::vector<torch::Tensor> Darts::unrolled_arch_grads(const Batch& supernet_batch,
                                                      const Batch& mutator_batch,
                                                      OptimWrapper& architecture_optim,
                                                      torch::Tensor* val_loss) {
  const std::vector<torch::Tensor> alphas = mutator_->arch_params();
  std::vector<DartsWeight> weights = darts_weights(architecture_optim);
  std::vector<torch::Tensor> params, backup;
  for (const auto& w : weights) {
    params.push_back(w.param);
    backup.push_back(w.param.detach().clone());
  }
  DartsRandomReplay random;

  // The virtual step, for real: w' = w - ξ(μ·m + ∇w L_train + λ·w).
  std::vector<torch::Tensor> grads = darts_gradients(total_loss(loss(supernet_batch)), params);
  darts_average(grads);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < weights.size(); ++i) {
      const DartsWeight& w = weights[i];
      torch::Tensor direction = grads[i] + w.weight_decay * w.param;
      if (w.momentum_buffer.defined()) direction = direction + w.momentum * w.momentum_buffer;
      w.param.sub_(direction, w.lr);
    }
  }

  // dα and dw' of L_val(w', α).
  const torch::Tensor loss_val = total_loss(loss(mutator_batch));
  std::vector<torch::Tensor> inputs = alphas;
  inputs.insert(inputs.end(), params.begin(), params.end());
  std::vector<torch::Tensor> val_grads = darts_gradients(loss_val, inputs);
  darts_average(val_grads);
  if (val_loss) *val_loss = loss_val.detach();
  std::vector<torch::Tensor> d_alpha(val_grads.begin(), val_grads.begin() + alphas.size());

  // The direction ξ·dw' (each group's own ξ) and the finite-difference step along it.
  std::vector<torch::Tensor> direction;
  double norm_sq = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    direction.push_back(val_grads[alphas.size() + i] * weights[i].lr);
    norm_sq += direction.back().to(torch::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(norm_sq);
  auto set_weights = [&](double scale) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].copy_(backup[i]);
      if (scale != 0) params[i].add_(direction[i], scale);
    }
  };
  if (norm < 1e-12) {  // no weight gradient: the Hessian term vanishes
    set_weights(0);
    return d_alpha;
  }
  const double eps = 0.01 / norm;
  std::vector<std::vector<torch::Tensor>> d_train;
  for (double scale : {eps, -eps}) {
    set_weights(scale);
    random.replay();
    d_train.push_back(darts_gradients(total_loss(loss(supernet_batch)), alphas));
  }
  set_weights(0);
  // ∇α L_val(w') − ξ·∇²α,w L_train · dw', the product by central differences.
  std::vector<torch::Tensor> out;
  for (size_t j = 0; j < alphas.size(); ++j) {
    out.push_back(d_alpha[j] - (d_train[0][j] - d_train[1][j]) / (2 * eps));
  }
  darts_average(out);  // d_train is local to each rank
  return out;
}

LossMap Darts::train_step(const Batch& batch, OptimWrapper& optim) {
  if (!mutator_->has_arch_params()) return Model::train_step(batch, optim);
  OptimWrapperDict& wrappers = as_optim_wrapper_dict(optim, "Darts");
  OptimWrapper& architecture_optim = wrappers.at("architecture");
  OptimWrapper& mutator_optim = wrappers.at("mutator");
  LossMap out;
  if (mutator_batch_) {
    const Batch mutator_batch = std::move(*mutator_batch_);
    mutator_batch_.reset();
    torch::Tensor val_loss;
    if (options_.unroll) {
      mutator_optim.zero_grad();
      std::vector<torch::Tensor> grads =
          unrolled_arch_grads(batch, mutator_batch, architecture_optim, &val_loss);
      std::vector<torch::Tensor> alphas = mutator_->arch_params();
      for (size_t j = 0; j < alphas.size(); ++j) alphas[j].mutable_grad() = grads[j];
      mutator_optim.step();
      mutator_optim.zero_grad();
    } else {
      const torch::Tensor loss_val = total_loss(loss(mutator_batch));
      mutator_optim.update_params(loss_val);
      // The backward also reached the weights: ∇w L_val must not join the weight step.
      architecture_optim.zero_grad();
      val_loss = loss_val.detach();
    }
    out.emplace_back("mutator.loss", val_loss);
  }
  LossMap losses = loss(batch);
  const torch::Tensor total = total_loss(losses);
  architecture_optim.update_params(total);
  for (const auto& item : losses) {
    if (item.first != "loss") out.emplace_back(item.first, item.second.detach().mean());
  }
  out.emplace_back("loss", total.detach());
  return out;
}

void register_darts() {
  static bool done = false;
  if (done) return;
  done = true;
  model_registry().add("Darts", [](Args& args, const BuildContext& context) {
    DartsOptions options;
    options.unroll = args.get<bool>("unroll", false);
    options.norm_training = args.get<bool>("norm_training", false);
    auto architecture = build_nas_supernet(args, context);
    auto algorithm =
        std::make_shared<Darts>(architecture, build_nas_mutator(args, context), options);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
  register_darts_loop();
  register_dump_subnet_hook();
}

}  // namespace razor
