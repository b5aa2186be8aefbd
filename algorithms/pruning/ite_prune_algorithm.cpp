#include "algorithms/pruning/ite_prune_algorithm.h"

#include "algorithms/architecture_weights.h"

#include <torch/torch.h>

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>

#include "components/estimators/resource_estimator.h"
#include "components/nn/module.h"
#include "engine/error.h"
#include "engine/loop.h"
#include "engine/runner.h"
#include "engine/text_file.h"

namespace razor {

namespace fs = std::filesystem;

ItePruneAlgorithm::ItePruneAlgorithm(std::shared_ptr<Model> architecture, std::unique_ptr<ChannelMutator> mutator,
                                     ItePruneOptions options, Runner* runner)
    : BaseAlgorithm(std::move(architecture)), mutator_(std::move(mutator)), options_(std::move(options)), runner_(runner) {
  RAZOR_CHECK(options_.step_freq > 0, "ItePruneAlgorithm: step_freq must be positive, got ", options_.step_freq);
  RAZOR_CHECK(options_.prune_times >= 1, "ItePruneAlgorithm: prune_times must be at least 1, got ",
              options_.prune_times);
  mutator_->prepare_from_supernet(*architecture_);
  supernet_ = mutator_->choice_template();
  for (const auto& [name, value] : options_.target.items()) {
    // An unknown unit is an error naming the nearest; so is a choice of the wrong kind or range.
    (void)mutator_->unit(name).width_of(value);
  }
  // FLOPs and params at full width, for the ratios reported at each prune.
  const Resources full = count();
  full_flops_ = full.flops;
  full_params_ = full.params;
}

Json ItePruneAlgorithm::prune_at(int64_t iteration, int64_t step) const {
  if (iteration % step != 0 || iteration / step >= options_.prune_times) return nullptr;
  const double done = static_cast<double>(iteration / step + 1) / static_cast<double>(options_.prune_times);
  Json choices = Json::object();
  for (const auto& [name, target] : options_.target.items()) {
    const Json& full = supernet_.at(name);
    if (!options_.linear_schedule) {
      choices[name] = target;
    } else if (full.is_number_integer()) {
      // A channel count stays an integer, rounded down as MMRazor's int().
      choices[name] = static_cast<int64_t>(full.get<double>() + (target.get<double>() - full.get<double>()) * done);
    } else {
      choices[name] = full.get<double>() + (target.get<double>() - full.get<double>()) * done;
    }
  }
  return choices;
}

Resources ItePruneAlgorithm::count() {
  // In eval mode and without gradients, so that training statistics do not move.
  const bool training = architecture_->is_training();
  architecture_->eval();
  torch::NoGradGuard no_grad;
  ResourceEstimator estimator(
      ResourceEstimatorOptions().with_input_shape(mutator_->options().parse.demo_input).with_units(""));
  Model& arch = *architecture_;
  const auto totals =
      estimator.estimate_report(arch, [&](const torch::Tensor& x) { return arch.forward_tensor(x); }).totals;
  architecture_->train(training);
  return totals;
}

void ItePruneAlgorithm::report() {
  const Resources totals = count();
  flops_ratio_ = totals.flops / full_flops_;
  params_ratio_ = totals.params / full_params_;
  std::string widths;
  for (const auto& unit : mutator_->units()) {
    if (unit->width() == unit->num_channels()) continue;
    widths += "\n  " + unit->name() + ": " + std::to_string(unit->width()) + " of " +
              std::to_string(unit->num_channels());
  }
  spdlog::info("ItePruneAlgorithm: pruned to {:.2f}% of the FLOPs ({:.3f} M of {:.3f} M) and {:.2f}% of the params "
               "({:.3f} M of {:.3f} M); channels kept:{}",
               100 * flops_ratio_, totals.flops / 1e6, full_flops_ / 1e6, 100 * params_ratio_, totals.params / 1e6,
               full_params_ / 1e6, widths.empty() ? " all" : widths);
}

LossMap ItePruneAlgorithm::train_step(const Batch& batch, OptimWrapper& optim) {
  int64_t iteration = own_iteration_;
  int64_t step = static_cast<int64_t>(std::llround(options_.step_freq));
  if (runner_) {
    TrainLoop& loop = runner_->train_loop();
    iteration = loop.iter();
    if (loop.by_epoch()) {
      // step_freq counts epochs: whole iterations of one.
      const double per_epoch = static_cast<double>(loop.max_iters()) / static_cast<double>(loop.max_epochs());
      step = static_cast<int64_t>(std::llround(options_.step_freq * per_epoch));
    }
  }
  step = std::max<int64_t>(step, 1);
  if (!options_.target.empty()) {
    const Json choices = prune_at(iteration, step);
    if (!choices.is_null()) {
      mutator_->set_choices(choices);
      spdlog::info("ItePruneAlgorithm: prune {} of {} at iteration {}", iteration / step + 1, options_.prune_times,
                   iteration);
      report();
    }
  }
  ++own_iteration_;
  LossMap losses = BaseAlgorithm::train_step(batch, optim);
  losses.emplace_back("flops_ratio", torch::tensor(flops_ratio_));
  losses.emplace_back("params_ratio", torch::tensor(params_ratio_));
  return losses;
}

Json ItePruneAlgorithm::extra_state() const {
  return {{"choices", mutator_->current_choices()},
          {"masks", mutator_->current_masks()},
          {"iteration", own_iteration_},
          {"flops_ratio", flops_ratio_},
          {"params_ratio", params_ratio_}};
}

void ItePruneAlgorithm::load_extra_state(const Json& state) {
  if (!state.is_object() || !state.contains("masks")) return;
  mutator_->load_masks(state["masks"], state["choices"]);
  own_iteration_ = state.value("iteration", int64_t{0});
  flops_ratio_ = state.value("flops_ratio", 1.0);
  params_ratio_ = state.value("params_ratio", 1.0);
}

namespace {

/// A JSON table given inline or as a path to a JSON file (relative to the config's folder).
Json table_or_file(Args& args, const std::string& key, const std::string& config_dir) {
  const Json& value = args.raw(key);
  if (!value.is_string()) return value;
  fs::path path = value.get<std::string>();
  if (path.is_relative() && !config_dir.empty()) path = fs::path(config_dir) / path;
  try {
    return Json::parse(read_text_file(path.string(), args.where(key)));
  } catch (const Json::parse_error& e) {
    throw config_error(path.string(), ": not valid JSON (", args.where(key), "): ", e.what());
  }
}

std::string config_dir_of(const Args& args) {
  return args.config() ? fs::path(args.config()->file).parent_path().string() : std::string();
}

}  // namespace

void register_pruning_algorithms() {
  // MMRazor's sub_model (mode "mutator"): the architecture `cfg` cut to the unit widths of
  // `fix_subnet` ({unit name: channel count or ratio}) for good, as a plain model. What
  // `razor export --pruned` writes, so that the pruned weights load into it.
  model_registry().add("sub_model", [](Args& args, const BuildContext& context) {
    Args cfg = args.sub("cfg");
    auto architecture = build_model_as<Model>(cfg, context, "an architecture");
    nn::assign_paths(*architecture);
    const std::string mode = args.get("mode", "mutator");
    if (mode != "mutator") args.fail("mode", "only \"mutator\" (channel units) is supported, got \"" + mode + "\"");
    const Json fix = table_or_file(args, "fix_subnet", config_dir_of(args));
    if (!fix.is_object()) args.fail("fix_subnet", "expected {unit name: channel count or ratio}, got " + fix.dump());
    ChannelMutatorOptions options;
    if (args.has("demo_input")) {
      options.parse = channel::ChannelAnalyzer::options_from(Json{{"demo_input", args.raw("demo_input")}},
                                                             args.where());
    }
    for (const auto& [name, choice] : fix.items()) {
      options.units[name] = {{"init_args", {{"choice_mode", choice.is_number_integer() ? "number" : "ratio"}}},
                             {"choice", choice}};
    }
    ChannelMutator mutator(options);
    mutator.prepare_from_supernet(*architecture);
    mutator.make_static();
    return std::static_pointer_cast<torch::nn::Module>(architecture);
  });

  model_registry().add("ItePruneAlgorithm", [](Args& args, const BuildContext& context) {
    Args architecture_args = args.sub("architecture");
    // MMRazor's architecture.init_cfg = { type = "Pretrained", checkpoint = ... }: the trained
    // model to prune, read here (the architecture itself takes no init_cfg).
    std::string pretrained;
    if (architecture_args.has("init_cfg")) {
      Args init = architecture_args.sub("init_cfg");
      const std::string type = init.get("type", "Pretrained");
      if (type != "Pretrained") init.fail("type", "only \"Pretrained\" initialises an architecture to prune");
      pretrained = init.require<std::string>("checkpoint");
      init.finish();
    }
    auto architecture = build_model_as<Model>(architecture_args, context, "an architecture");
    nn::assign_paths(*architecture);
    if (!pretrained.empty()) {
      load_architecture_weights(*architecture, pretrained, args.config(), architecture_args.where("init_cfg.checkpoint"));
      spdlog::info("ItePruneAlgorithm: pruning the model of {}", pretrained);
    }
    const std::string config_dir = config_dir_of(args);
    const Json mutator_table = args.has("mutator_cfg") ? args.raw("mutator_cfg") : Json::object();
    RAZOR_CHECK(mutator_table.is_object(), args.where("mutator_cfg"), ": expected a table");
    auto mutator = std::make_unique<ChannelMutator>(
        ChannelMutatorOptions::from(mutator_table, args.where("mutator_cfg"), config_dir));
    ItePruneOptions options;
    if (args.has("target_pruning_ratio")) {
      options.target = table_or_file(args, "target_pruning_ratio", config_dir);
      if (options.target.is_null()) options.target = Json::object();
      RAZOR_CHECK(options.target.is_object(), args.where("target_pruning_ratio"),
                  ": expected {unit name: ratio or channel count}, got ", options.target.dump());
    }
    options.step_freq = args.get<double>("step_freq", 1.0);
    options.prune_times = args.get<int64_t>("prune_times", 1);
    options.linear_schedule = args.get<bool>("linear_schedule", true);
    auto algorithm = std::make_shared<ItePruneAlgorithm>(architecture, std::move(mutator), options, context.runner);
    nn::assign_paths(*algorithm);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
}

}  // namespace razor
