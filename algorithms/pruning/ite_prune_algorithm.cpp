#include "algorithms/pruning/ite_prune_algorithm.h"

#include "algorithms/architecture_weights.h"
#include "algorithms/pruning/group_fisher_algorithm.h"
#include "algorithms/pruning/dcff.h"
#include "algorithms/pruning/dmcp.h"
#include "algorithms/pruning/ite_prune_val_loop.h"
#include "algorithms/pruning/slimmable_network.h"

#include <torch/torch.h>

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>

#include "components/estimators/resource_estimator.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/module.h"
#include "engine/checkpoint.h"
#include "engine/dist.h"
#include "engine/error.h"
#include "engine/loop.h"
#include "engine/runner.h"
#include "engine/text_file.h"

namespace razor {

namespace fs = std::filesystem;

ItePruneAlgorithm::ItePruneAlgorithm(std::shared_ptr<Model> architecture, std::unique_ptr<ChannelMutator> mutator,
                                     ItePruneOptions options, Runner* runner, ArchitectureBuilder build_copy)
    : BaseAlgorithm(std::move(architecture)),
      mutator_(std::move(mutator)),
      options_(std::move(options)),
      runner_(runner),
      build_copy_(std::move(build_copy)) {
  RAZOR_CHECK(options_.step_freq > 0, "ItePruneAlgorithm: step_freq must be positive, got ", options_.step_freq);
  RAZOR_CHECK(options_.prune_times >= 1, "ItePruneAlgorithm: prune_times must be at least 1, got ",
              options_.prune_times);
  mutator_->prepare_from_supernet(*architecture_);
  supernet_ = mutator_->choice_template();
  for (const auto& [name, value] : options_.target.items()) {
    // An unknown unit is an error naming the nearest; so is a choice of the wrong kind or range.
    (void)mutator_->unit(name).width_of(value);
  }
  // FLOPs and params at full width (whatever widths the units start at), for the ratios.
  channel::ChannelSelection full_width = mutator_->selection();
  full_width.keep_all();
  full_width.apply();
  const Resources full = count();
  mutator_->apply();
  full_flops_ = full.flops;
  full_params_ = full.params;
  update_ratios();
  const bool by_flops = options_.target_flops > 0;
  if (by_flops || options_.target_params > 0) {
    RAZOR_CHECK(options_.target.empty() && !(by_flops && options_.target_params > 0),
                "ItePruneAlgorithm: give one target: target_pruning_ratio, target_flops or target_params");
    options_.target = target_for_share(by_flops ? options_.target_flops : options_.target_params, by_flops);
  }
}

Json ItePruneAlgorithm::target_for_share(double share, bool of_flops) {
  const char* what = of_flops ? "target_flops" : "target_params";
  RAZOR_CHECK(share > 0 && share <= 1, "ItePruneAlgorithm: ", what, " must be a share of the full model in (0, 1], got ",
              share);
  auto choices_at = [&](double ratio) {
    Json choices = Json::object();
    for (const auto& unit : mutator_->units()) {
      if (unit->options().choice_mode == "ratio") {
        choices[unit->name()] = ratio;
      } else {
        choices[unit->name()] = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(unit->num_channels()) * ratio));
      }
    }
    return choices;
  };
  // Counted at the widths alone (the first channels of each unit: which ones are kept does
  // not change the count), so that no importance is computed, none from gradients.
  auto share_at = [&](double ratio) {
    const Json choices = choices_at(ratio);
    channel::ChannelSelection widths = mutator_->selection();
    for (size_t i = 0; i < mutator_->units().size(); ++i) {
      const auto& unit = *mutator_->units()[i];
      widths.keep_first(i, unit.width_of(choices.at(unit.name())));
    }
    widths.apply();
    const Resources r = count();
    return of_flops ? r.flops / full_flops_ : r.params / full_params_;
  };
  // The widths only grow with the ratio, so the share does: bisect for the largest ratio
  // (to 4 decimals, rounded down) whose model keeps at most `share`.
  double low = 1e-4, high = 1.0;
  const double smallest = share_at(low);
  double ratio = 1.0;
  if (share_at(high) > share) {
    RAZOR_CHECK(smallest <= share, "ItePruneAlgorithm: ", what, " = ", share, " cannot be reached: with one channel "
                "left in every unit the model keeps ", smallest, " of its ", of_flops ? "FLOPs" : "params");
    for (int i = 0; i < 30; ++i) {
      const double mid = (low + high) / 2;
      (share_at(mid) <= share ? low : high) = mid;
    }
    ratio = std::floor(low * 1e4) / 1e4;
  }
  const double reached = share_at(ratio);
  mutator_->apply();
  spdlog::info("ItePruneAlgorithm: {} = {}: every unit keeps a ratio of {} of its channels, {:.2f}% of the {}", what,
               share, ratio, 100 * reached, of_flops ? "FLOPs" : "params");
  return choices_at(ratio);
}

Json ItePruneAlgorithm::widths(int64_t divisor) const {
  Json out = Json::object();
  for (const auto& unit : mutator_->units()) {
    out[unit->name()] = padded_width(unit->width(), unit->num_channels(), divisor);
  }
  return out;
}

std::shared_ptr<Model> ItePruneAlgorithm::static_architecture(int64_t divisor) const {
  RAZOR_CHECK(build_copy_, "ItePruneAlgorithm: this algorithm was built without a way to copy its architecture");
  // Building the copy initialises its weights from the global generator: put its state back,
  // so that cutting a copy during training (ItePruneValLoop) leaves the run's random stream
  // where an uninterrupted or resumed run has it.
  struct RestoreGenerator {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    torch::Tensor state = generator.get_state();
    ~RestoreGenerator() { generator.set_state(state); }
  } restore;
  std::shared_ptr<Model> copy = build_copy_();
  // The units first: they may add state the weights fill (a slimmable unit's BatchNorms).
  ChannelMutator cut(mutator_->options());
  cut.prepare_from_supernet(*copy);
  load_state_dict(*copy, state_dict(*architecture_), /*strict=*/true, "the pruned architecture");
  cut.load_masks(mutator_->current_masks(), mutator_->current_choices());
  cut.make_static(divisor);
  copy->eval();
  return copy;
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

ResourceReport ItePruneAlgorithm::count_report() {
  // In eval mode and without gradients, so that training statistics do not move.
  const bool training = architecture_->is_training();
  architecture_->eval();
  torch::NoGradGuard no_grad;
  ResourceEstimator estimator(
      ResourceEstimatorOptions().with_input_shape(mutator_->options().parse.demo_input).with_units(""));
  Model& arch = *architecture_;
  ResourceReport report = estimator.estimate_report(arch, [&](const torch::Tensor& x) { return arch.forward_tensor(x); });
  architecture_->train(training);
  return report;
}

Resources ItePruneAlgorithm::count() { return count_report().totals; }

int64_t ItePruneAlgorithm::iteration() const { return runner_ ? runner_->train_loop().iter() : own_iteration_; }

void ItePruneAlgorithm::update_ratios() {
  const Resources totals = count();
  flops_ratio_ = totals.flops / full_flops_;
  params_ratio_ = totals.params / full_params_;
}

void ItePruneAlgorithm::report() {
  update_ratios();
  std::string widths;
  for (const auto& unit : mutator_->units()) {
    if (unit->width() == unit->num_channels()) continue;
    widths += "\n  " + unit->name() + ": " + std::to_string(unit->width()) + " of " +
              std::to_string(unit->num_channels());
  }
  spdlog::info("ItePruneAlgorithm: pruned to {:.2f}% of the FLOPs ({:.3f} M of {:.3f} M) and {:.2f}% of the params "
               "({:.3f} M of {:.3f} M); channels kept:{}",
               100 * flops_ratio_, flops_ratio_ * full_flops_ / 1e6, full_flops_ / 1e6, 100 * params_ratio_,
               params_ratio_ * full_params_ / 1e6,
               full_params_ / 1e6, widths.empty() ? " all" : widths);
}

int64_t ItePruneAlgorithm::step_in_iterations() const {
  double step = options_.step_freq;
  if (runner_ && runner_->train_loop().by_epoch()) {
    // step_freq counts epochs: whole iterations of one.
    const TrainLoop& loop = runner_->train_loop();
    step *= static_cast<double>(loop.max_iters()) / static_cast<double>(loop.max_epochs());
  }
  return std::max<int64_t>(static_cast<int64_t>(std::llround(step)), 1);
}

int64_t ItePruneAlgorithm::max_iterations() const { return runner_ ? runner_->train_loop().max_iters() : 0; }

namespace {

/// For units that rank channels by the loss's gradients (Taylor): one forward and backward
/// of `batch` at the current widths, the gradients averaged over ranks so that every rank
/// keeps the same channels. No optimiser steps; the caller clears the gradients after.
/// Returns whether it ran.
bool gradients_for_importance(Model& architecture, const ChannelMutator& mutator, const Batch& batch) {
  bool needed = false;
  for (const auto& unit : mutator.units()) {
    auto* ranked = dynamic_cast<const channel::ImportanceChannelUnit*>(unit.get());
    needed = needed || (ranked && ranked->needs_gradients());
  }
  if (!needed) return false;
  architecture.zero_grad();
  total_loss(architecture.loss(batch)).backward();
  if (dist::world_size() > 1) {
    std::vector<torch::Tensor> gradients;
    for (auto& p : architecture.parameters()) {
      if (p.grad().defined()) gradients.push_back(p.mutable_grad());
    }
    dist::all_reduce(gradients);
    for (auto& g : gradients) g.div_(static_cast<double>(dist::world_size()));
  }
  return true;
}

}  // namespace

LossMap ItePruneAlgorithm::train_step(const Batch& batch, OptimWrapper& optim) {
  const int64_t at = iteration();
  const int64_t step = step_in_iterations();
  if (!options_.target.empty()) {
    const Json choices = prune_at(at, step);
    if (!choices.is_null()) {
      const bool with_gradients = gradients_for_importance(*architecture_, *mutator_, batch);
      mutator_->set_choices(choices);
      if (with_gradients) architecture_->zero_grad();
      spdlog::info("ItePruneAlgorithm: prune {} of {} at iteration {}", at / step + 1, options_.prune_times, at);
      report();
    }
  }
  count_iteration();
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

/// A new copy of the architecture table (without its init_cfg), built as `args` builds it.
ArchitectureBuilder architecture_builder(Args& args, const std::string& key) {
  Json table = args.raw(key);
  table.erase("init_cfg");
  return [table, where = args.where(key), config = args.config()] {
    Args copy_args(table, where, config);
    auto copy = build_model_as<Model>(copy_args, {}, "an architecture");
    nn::assign_paths(*copy);
    return copy;
  };
}

}  // namespace

Json table_or_file(Args& args, const std::string& key, const std::string& config_dir) {
  const Json& value = args.raw(key);
  if (!value.is_string()) return value;
  fs::path path = value.get<std::string>();
  if (path.is_relative() && !fs::exists(path) && !config_dir.empty() && fs::exists(fs::path(config_dir) / path)) {
    path = fs::path(config_dir) / path;
  }
  const std::string text = read_text_file(path.string(), args.where(key));
  const std::string ext = path.extension().string();
  if (ext == ".yaml" || ext == ".yml") return yaml_text_to_json(text, path.string());
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw config_error(path.string(), ": not valid JSON (", args.where(key), "): ", e.what());
  }
}

std::string pretrained_checkpoint(Args& args, const char* purpose) {
  if (!args.has("init_cfg")) return {};
  Args init = args.sub("init_cfg");
  const std::string type = init.get("type", "Pretrained");
  if (type != "Pretrained") init.fail("type", std::string("only \"Pretrained\" initialises ") + purpose);
  std::string checkpoint = init.require<std::string>("checkpoint");
  init.finish();
  return checkpoint;
}

std::string config_dir_of(const Args& args) {
  return args.config() ? fs::path(args.config()->file).parent_path().string() : std::string();
}

std::pair<std::shared_ptr<Model>, ArchitectureBuilder> build_architecture_to_prune(Args& args,
                                                                                  const BuildContext& context,
                                                                                  const char* who) {
  ArchitectureBuilder build_copy = architecture_builder(args, "architecture");
  Args architecture_args = args.sub("architecture");
  const std::string pretrained = pretrained_checkpoint(architecture_args, "an architecture to prune");
  auto architecture = build_model_as<Model>(architecture_args, context, "an architecture");
  nn::assign_paths(*architecture);
  if (!pretrained.empty()) {
    load_architecture_weights(*architecture, pretrained, args.config(), architecture_args.where("init_cfg.checkpoint"));
    spdlog::info("{}: pruning the model of {}", who, pretrained);
  }
  return {architecture, build_copy};
}

ChannelMutatorOptions channel_mutator_options_from(Args& args, const std::string& key, const std::string& type) {
  Json table = args.has(key) ? args.raw(key) : Json::object();
  RAZOR_CHECK(table.is_object(), args.where(key), ": expected a table");
  if (!table.contains("type")) table["type"] = type;
  ChannelMutatorOptions options = ChannelMutatorOptions::from(table, args.where(key), config_dir_of(args));
  // The mutators that are classes of their own take only their own type.
  if (type == "GroupFisherChannelMutator" || type == "DMCPChannelMutator") {
    RAZOR_CHECK(options.type == type, args.where(key + ".type"), ": expected \"", type, "\", got \"", options.type, "\"");
  }
  return options;
}

ItePruneOptions ite_prune_options_from(Args& args, ItePruneOptions options) {
  if (args.has("target_pruning_ratio")) {
    options.target = table_or_file(args, "target_pruning_ratio", config_dir_of(args));
    if (options.target.is_null()) options.target = Json::object();
    RAZOR_CHECK(options.target.is_object(), args.where("target_pruning_ratio"),
                ": expected {unit name: ratio or channel count}, got ", options.target.dump());
  }
  for (const char* key : {"target_flops", "target_params"}) {
    if (!args.has(key)) continue;
    if (args.has("target_pruning_ratio")) args.fail(key, "give target_pruning_ratio or this, not both");
    const double share = args.require<double>(key);
    if (!(share > 0 && share <= 1)) args.fail(key, "a share of the full model in (0, 1], got " + std::to_string(share));
    (std::string(key) == "target_flops" ? options.target_flops : options.target_params) = share;
  }
  if (args.has("target_flops") && args.has("target_params")) args.fail("target_params", "give target_flops or this, not both");
  options.step_freq = args.get<double>("step_freq", options.step_freq);
  options.prune_times = args.get<int64_t>("prune_times", options.prune_times);
  options.linear_schedule = args.get<bool>("linear_schedule", options.linear_schedule);
  return options;
}

void register_pruning_algorithms() {
  register_ite_prune_val_loop();
  register_group_fisher();
  register_slimmable_network();
  register_dcff();
  register_dmcp();
  model_registry().add("ItePruneAlgorithm", [](Args& args, const BuildContext& context) {
    auto [architecture, build_copy] = build_architecture_to_prune(args, context, "ItePruneAlgorithm");
    auto mutator = std::make_unique<ChannelMutator>(channel_mutator_options_from(args, "mutator_cfg", "ChannelMutator"));
    auto algorithm = std::make_shared<ItePruneAlgorithm>(architecture, std::move(mutator),
                                                         ite_prune_options_from(args, ItePruneOptions{}), context.runner,
                                                         std::move(build_copy));
    nn::assign_paths(*algorithm);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
}

}  // namespace razor
