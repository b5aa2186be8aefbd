#include "engine/optim_wrapper.h"

#include <map>

#include <torch/torch.h>

#include "engine/data_parallel.h"
#include "engine/error.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/strings.h"

namespace razor {

OptimWrapper::OptimWrapper(std::shared_ptr<torch::optim::Optimizer> optimizer,
                           std::vector<torch::Tensor> parameters, int64_t accumulative_counts,
                           std::optional<ClipGradOptions> clip_grad)
    : optimizer_(std::move(optimizer)),
      parameters_(std::move(parameters)),
      accumulative_counts_(accumulative_counts),
      clip_grad_(std::move(clip_grad)) {
  RAZOR_CHECK(accumulative_counts_ >= 1, "optim_wrapper.accumulative_counts must be >= 1, got ",
              accumulative_counts_);
}

void OptimWrapper::initialize_count_status(int64_t inner_count, int64_t max_counts) {
  inner_count_ = inner_count;
  max_counts_ = max_counts;
}

void OptimWrapper::backward(const torch::Tensor& loss, bool sync) {
  if (sync_ && sync) {
    sync_->backward(loss);
  } else {
    loss.backward();
  }
  ++inner_count_;
}

void OptimWrapper::update_params(const torch::Tensor& loss) {
  // The last window may be shorter than accumulative_counts: scale by its real length.
  int64_t window = accumulative_counts_;
  if (max_counts_ > 0 && accumulative_counts_ > 1) {
    const int64_t last_window_start = max_counts_ - max_counts_ % accumulative_counts_;
    if (max_counts_ % accumulative_counts_ != 0 && inner_count_ >= last_window_start) {
      window = max_counts_ - last_window_start;
    }
  }
  // Only the backward that ends an accumulation window averages gradients over the ranks
  // (DistributedDataParallel's no_sync for the others).
  const int64_t count = inner_count_ + 1;
  const bool boundary = count % accumulative_counts_ == 0 || (max_counts_ > 0 && count == max_counts_);
  backward(window == 1 ? loss : loss / static_cast<double>(window), boundary);
  if (boundary) {
    step();
    zero_grad();
  }
}

void OptimWrapper::step() {
  if (clip_grad_) {
    std::vector<torch::Tensor> with_grad;
    for (const auto& p : parameters_) {
      if (p.grad().defined()) with_grad.push_back(p);
    }
    if (!with_grad.empty()) {
      if (clip_grad_->type == "value") {
        torch::nn::utils::clip_grad_value_(with_grad, clip_grad_->max_norm);
      } else {
        last_grad_norm_ =
            torch::nn::utils::clip_grad_norm_(with_grad, clip_grad_->max_norm, clip_grad_->norm_type);
      }
    }
  }
  optimizer_->step();
}

// Gradients are released, not zeroed (PyTorch's set_to_none): a parameter that takes no part
// in the next step (an unchosen candidate of a one-shot supernet) then gets no momentum or
// weight-decay update, and a resumed run, which starts with no gradients, steps exactly as
// the uninterrupted one.
void OptimWrapper::zero_grad() {
  for (auto& group : optimizer_->param_groups()) {
    for (auto& p : group.params()) {
      if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
    }
  }
}

size_t OptimWrapper::num_groups() const { return optimizer_->param_groups().size(); }

namespace {

double get_value(torch::optim::OptimizerOptions& options, const std::string& name) {
  if (name == "lr") return options.get_lr();
  if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&options)) {
    if (name == "momentum") return sgd->momentum();
    if (name == "weight_decay") return sgd->weight_decay();
  } else if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&options)) {
    if (name == "momentum") return std::get<0>(adam->betas());
    if (name == "weight_decay") return adam->weight_decay();
  } else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&options)) {
    if (name == "momentum") return std::get<0>(adamw->betas());
    if (name == "weight_decay") return adamw->weight_decay();
  }
  throw config_error("the optimizer has no scheduled value \"", name,
                     "\" (known: lr, momentum, weight_decay)");
}

void set_value(torch::optim::OptimizerOptions& options, const std::string& name, double value) {
  if (name == "lr") return options.set_lr(value);
  if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&options)) {
    if (name == "momentum") return void(sgd->momentum(value));
    if (name == "weight_decay") return void(sgd->weight_decay(value));
  } else if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&options)) {
    if (name == "momentum") return void(adam->betas({value, std::get<1>(adam->betas())}));
    if (name == "weight_decay") return void(adam->weight_decay(value));
  } else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&options)) {
    if (name == "momentum") return void(adamw->betas({value, std::get<1>(adamw->betas())}));
    if (name == "weight_decay") return void(adamw->weight_decay(value));
  }
  throw config_error("the optimizer has no scheduled value \"", name,
                     "\" (known: lr, momentum, weight_decay)");
}

}  // namespace

std::vector<double> OptimWrapper::get(const std::string& name) const {
  std::vector<double> out;
  for (auto& group : optimizer_->param_groups()) out.push_back(get_value(group.options(), name));
  return out;
}

void OptimWrapper::set(const std::string& name, size_t group, double value) {
  set_value(optimizer_->param_groups().at(group).options(), name, value);
}

namespace {

/// Per-parameter multipliers from paramwise_cfg (MMEngine's DefaultOptimWrapperConstructor).
struct ParamMults {
  double lr = 1.0;
  double decay = 1.0;
  bool operator<(const ParamMults& o) const {
    return lr < o.lr || (lr == o.lr && decay < o.decay);
  }
};

struct CustomKey {
  std::string key;
  ParamMults mults;
};

template <class Options, class Optimizer>
std::shared_ptr<OptimizerSpec> make_spec(Args& args, std::function<void(Options&)> configure) {
  auto spec = std::make_shared<OptimizerSpec>();
  spec->lr = args.require<double>("lr");
  RAZOR_CHECK(spec->lr >= 0, args.where("lr"), ": must be >= 0, got ", spec->lr);
  const double default_decay = std::is_same_v<Options, torch::optim::AdamWOptions> ? 1e-2 : 0.0;
  spec->weight_decay = args.get<double>("weight_decay", default_decay);
  spec->make_options = [configure](double lr, double weight_decay) {
    auto options = std::make_unique<Options>(lr);
    configure(*options);
    options->weight_decay(weight_decay);
    return std::unique_ptr<torch::optim::OptimizerOptions>(std::move(options));
  };
  spec->make_optimizer = [](std::vector<torch::optim::OptimizerParamGroup> groups,
                            const torch::optim::OptimizerOptions& defaults) {
    return std::static_pointer_cast<torch::optim::Optimizer>(
        std::make_shared<Optimizer>(std::move(groups), static_cast<const Options&>(defaults)));
  };
  return spec;
}

template <class Options>
std::function<void(Options&)> adam_like(Args& args) {
  const auto betas = args.get<std::vector<double>>("betas", {0.9, 0.999});
  if (betas.size() != 2) args.fail("betas", "expected two values [beta1, beta2]");
  const double eps = args.get<double>("eps", 1e-8);
  const bool amsgrad = args.get<bool>("amsgrad", false);
  return [=](Options& o) { o.betas({betas[0], betas[1]}).eps(eps).amsgrad(amsgrad); };
}

bool is_norm_module(const torch::nn::Module& module) {
  return module.name().find("Norm") != std::string::npos;
}

// MMEngine's test, in_channels == groups: one input channel per group (which also holds for a
// plain convolution of a one-channel input, as in MMEngine).
bool is_depthwise_conv(const torch::nn::Module& module) {
  if (module.name() != "Conv2d" && module.name() != "torch::nn::Conv2dImpl") return false;
  const torch::Tensor* weight = module.named_parameters(false).find("weight");
  return weight != nullptr && weight->dim() == 4 && weight->size(1) == 1;
}

}  // namespace

Registry<OptimizerSpec>& optimizer_registry() {
  static Registry<OptimizerSpec> registry("optimizers");
  return registry;
}

void register_optimizers() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = optimizer_registry();
  registry.add("SGD", [](Args& args, const BuildContext&) {
    const double momentum = args.get<double>("momentum", 0.0);
    const double dampening = args.get<double>("dampening", 0.0);
    const bool nesterov = args.get<bool>("nesterov", false);
    RAZOR_CHECK(!nesterov || (momentum > 0 && dampening == 0), args.where("nesterov"),
                ": Nesterov momentum needs momentum > 0 and dampening 0");
    return make_spec<torch::optim::SGDOptions, torch::optim::SGD>(
        args, [=](torch::optim::SGDOptions& o) { o.momentum(momentum).dampening(dampening).nesterov(nesterov); });
  });
  registry.add("Adam", [](Args& args, const BuildContext&) {
    return make_spec<torch::optim::AdamOptions, torch::optim::Adam>(
        args, adam_like<torch::optim::AdamOptions>(args));
  });
  registry.add("AdamW", [](Args& args, const BuildContext&) {
    return make_spec<torch::optim::AdamWOptions, torch::optim::AdamW>(
        args, adam_like<torch::optim::AdamWOptions>(args));
  });
}

std::shared_ptr<OptimWrapper> build_optim_wrapper(Args& args, torch::nn::Module& model) {
  register_optimizers();
  // MMEngine's OPTIM_WRAPPER_CONSTRUCTORS: the default builds one wrapper over the model.
  const std::string constructor = args.get("constructor", kDefaultOptimWrapperConstructor);
  if (constructor == kSeparateOptimWrapperConstructor) return build_optim_wrapper_dict(args, model);
  if (constructor != kDefaultOptimWrapperConstructor) {
    const std::vector<std::string> known = {kDefaultOptimWrapperConstructor, kSeparateOptimWrapperConstructor};
    args.fail("constructor", "unknown optim wrapper constructor \"" + constructor + "\"" +
                                 did_you_mean(constructor, known) + " (known: " + join(known, ", ") + ")");
  }
  const std::string wrapper_type = args.get("type", "OptimWrapper");
  if (wrapper_type != "OptimWrapper") {
    args.fail("type", "unknown optim wrapper type \"" + wrapper_type + "\"; only \"OptimWrapper\"");
  }
  Args optimizer_args = args.sub("optimizer");
  auto spec = optimizer_registry().build(optimizer_args);

  // paramwise_cfg: multipliers for norm and bias parameters and for name substrings.
  double norm_decay_mult = 1.0, bias_decay_mult = 1.0, bias_lr_mult = 1.0, dwconv_decay_mult = 1.0;
  std::vector<CustomKey> custom_keys;
  if (args.has("paramwise_cfg")) {
    Args paramwise = args.sub("paramwise_cfg");
    norm_decay_mult = paramwise.get<double>("norm_decay_mult", 1.0);
    bias_decay_mult = paramwise.get<double>("bias_decay_mult", 1.0);
    bias_lr_mult = paramwise.get<double>("bias_lr_mult", 1.0);
    dwconv_decay_mult = paramwise.get<double>("dwconv_decay_mult", 1.0);
    if (paramwise.has("custom_keys")) {
      Args keys = paramwise.sub("custom_keys");
      for (const auto& item : keys.table().items()) {
        Args key_args = keys.sub(item.key());
        CustomKey custom{item.key(), {key_args.get<double>("lr_mult", 1.0),
                                      key_args.get<double>("decay_mult", 1.0)}};
        key_args.finish();
        custom_keys.push_back(custom);
      }
      // Longest key first, as MMEngine does, so the most specific key wins.
      std::stable_sort(custom_keys.begin(), custom_keys.end(), [](const CustomKey& a, const CustomKey& b) {
        return a.key.size() > b.key.size();
      });
    }
    paramwise.finish();
  }

  std::map<ParamMults, std::vector<torch::Tensor>> groups;
  std::vector<torch::Tensor> all;
  for (const auto& module_item : model.named_modules()) {
    const bool norm = is_norm_module(*module_item.value());
    const bool dwconv = is_depthwise_conv(*module_item.value());
    for (const auto& param_item : module_item.value()->named_parameters(/*recurse=*/false)) {
      const torch::Tensor& param = param_item.value();
      if (!param.requires_grad()) continue;
      const std::string full_name = join_key(module_item.key(), param_item.key());
      ParamMults mults;
      bool matched = false;
      for (const auto& custom : custom_keys) {
        if (full_name.find(custom.key) != std::string::npos) {
          mults = custom.mults;
          matched = true;
          break;
        }
      }
      if (!matched) {
        if (norm) {
          mults.decay = norm_decay_mult;
        } else if (param_item.key() == "bias") {
          mults.decay = bias_decay_mult;
          mults.lr = bias_lr_mult;
        } else if (dwconv) {
          mults.decay = dwconv_decay_mult;
        }
      }
      groups[mults].push_back(param);
      all.push_back(param);
    }
  }
  RAZOR_CHECK(!all.empty(), args.where(), ": the model has no trainable parameters");

  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (auto& item : groups) {
    param_groups.emplace_back(item.second, spec->make_options(spec->lr * item.first.lr,
                                                              spec->weight_decay * item.first.decay));
  }
  auto defaults = spec->make_options(spec->lr, spec->weight_decay);
  auto optimizer = spec->make_optimizer(std::move(param_groups), *defaults);

  std::optional<ClipGradOptions> clip;
  if (args.has("clip_grad") && !args.table().at("clip_grad").is_null()) {
    Args clip_args = args.sub("clip_grad");
    ClipGradOptions options;
    options.type = clip_args.get("type", "norm");
    if (options.type == "norm") {
      options.max_norm = clip_args.require<double>("max_norm");
      options.norm_type = clip_args.get<double>("norm_type", 2.0);
    } else if (options.type == "value") {
      options.max_norm = clip_args.require<double>("clip_value");
    } else {
      clip_args.fail("type", "expected \"norm\" or \"value\", got \"" + options.type + "\"");
    }
    clip_args.finish();
    clip = options;
  }
  const int64_t accumulative_counts = args.get<int64_t>("accumulative_counts", 1);
  args.finish();
  return std::make_shared<OptimWrapper>(optimizer, all, accumulative_counts, clip);
}

}  // namespace razor
