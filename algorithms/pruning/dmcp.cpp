#include "algorithms/pruning/dmcp.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "components/distill/recorder.h"
#include "components/estimators/resource_estimator.h"
#include "components/nn/conv.h"
#include "components/nn/module.h"
#include "engine/error.h"
#include "engine/hook.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/runner.h"
#include "engine/text_file.h"

namespace razor {

namespace fs = std::filesystem;

torch::Tensor dmcp_flops_loss(const torch::Tensor& expected, double target, const std::string& type) {
  const torch::Tensor error = expected - target;
  if (type == "l2") return error.pow(2);
  if (type == "l1") return error.abs();
  if (type == "inverted_log_l1") return -torch::log(1 / (error + 1e-5));
  RAZOR_CHECK(type == "log_l1", "DMCP: flops_loss_type must be \"log_l1\", \"l1\", \"l2\" or \"inverted_log_l1\", got \"",
              type, "\"");
  const double e = expected.item<double>();
  const double ratio = std::abs(e - target) > 200 ? 0.1 : 1.0;
  const double lower = 0.95 * target;
  if (e < lower) return torch::log(ratio * error.abs());
  if (e < target) return expected * 0;
  return torch::log(ratio * (expected - lower).abs());
}

namespace {

/// The recorders of `manager` run for a scope (none without a distiller).
struct MaybeRecording {
  explicit MaybeRecording(RecorderManager* manager) : manager_(manager) {
    if (manager_) manager_->start();
  }
  ~MaybeRecording() {
    if (manager_) manager_->stop();
  }
  RecorderManager* manager_;
};

/// `losses` under `prefix`, with their total as prefix + "loss" (a single loss already named
/// "loss" is that total).
LossMap prefixed(const std::string& prefix, const LossMap& losses, const torch::Tensor& total) {
  LossMap out;
  for (const auto& [key, value] : losses) {
    if (key != "loss") out.emplace_back(prefix + key, value.detach().mean());
  }
  out.emplace_back(prefix + "loss", total.detach());
  return out;
}

}  // namespace

DMCP::DMCP(std::shared_ptr<Model> architecture, std::unique_ptr<DMCPChannelMutator> mutator, DMCPOptions options,
           std::shared_ptr<ConfigurableDistiller> distiller, Runner* runner, ArchitectureBuilder build_copy)
    : ItePruneAlgorithm(std::move(architecture), std::move(mutator), ItePruneOptions{}, runner, std::move(build_copy)),
      options_(std::move(options)),
      distiller_(std::move(distiller)) {
  for (const auto& kind : options_.strategy) {
    RAZOR_CHECK(kind == "max" || kind == "min" || kind == "scheduled_random" || kind == "arch_random",
                "DMCP: each strategy entry is \"max\", \"min\", \"scheduled_random\" or \"arch_random\", got \"", kind,
                "\"");
  }
  RAZOR_CHECK(options_.arch_train_freq >= 1, "DMCP: arch_train_freq must be at least 1, got ", options_.arch_train_freq);
  RAZOR_CHECK(options_.target_flops > 0, "DMCP: target_flops (MFLOPs) must be positive, got ", options_.target_flops);
  (void)dmcp_flops_loss(torch::tensor(1.0), 1.0, options_.flops_loss_type);  // checks the type
  register_module("mutator", dmcp_mutator().arch_module());
  if (distiller_) {
    register_module("distiller", distiller_);
    distiller_->prepare(*architecture_, architecture_.get());
  }

  // Each op's full-width FLOPs (the backbone's, if there is one), and the units on its sides.
  std::map<std::string, CountedOp> ops;
  const auto& units = this->mutator().units();
  for (size_t u = 0; u < units.size(); ++u) {
    for (const auto& c : units[u]->spec().output_related) ops[c.name].out_units.emplace_back(u, c.end - c.start);
    for (const auto& c : units[u]->spec().input_related) ops[c.name].in_units.emplace_back(u, c.end - c.start);
  }
  const ResourceReport report = count_report();
  const auto modules = architecture_->named_modules();
  for (const auto& layer : report.layers) has_backbone_ = has_backbone_ || layer.path.rfind("backbone.", 0) == 0;
  for (const auto& layer : report.layers) {
    if (layer.flops == 0 || (has_backbone_ && layer.path.rfind("backbone.", 0) != 0)) continue;
    CountedOp op = ops.count(layer.path) ? ops[layer.path] : CountedOp{};
    op.flops = layer.flops;
    if (const auto* module = modules.find(layer.path)) {
      if (auto* dynamic = dynamic_cast<nn::DynamicChannels*>(module->get())) {
        op.out_width = static_cast<double>(dynamic->out_width());
        op.in_width = static_cast<double>(dynamic->in_width());
      }
      // One set of channels: the cost follows it once.
      auto* conv = dynamic_cast<nn::Conv2d*>(module->get());
      op.depthwise = (conv && conv->depthwise()) || layer.type == "BatchNorm2d";
    }
    counted_.push_back(std::move(op));
  }
}

DMCPChannelMutator& DMCP::dmcp_mutator() { return static_cast<DMCPChannelMutator&>(mutator()); }

namespace {

/// An op's share of its full FLOPs on one side at `widths` (channels per unit).
torch::Tensor side_share(const std::vector<std::pair<size_t, double>>& units, double width,
                         const std::vector<torch::Tensor>& widths, const std::vector<double>& channels) {
  if (units.empty() || width == 0) return torch::ones({}, torch::kDouble);
  torch::Tensor kept = torch::zeros({}, torch::kDouble);
  double covered = 0;
  for (const auto& [u, n] : units) {
    kept = kept + widths[u].to(torch::kDouble) * (n / channels[u]);
    covered += n;
  }
  return (kept + (width - covered)) / width;
}

}  // namespace

torch::Tensor DMCP::expected_mflops() {
  const std::vector<torch::Tensor> widths = dmcp_mutator().expected_channels();
  std::vector<double> channels;
  for (const auto& unit : mutator().units()) channels.push_back(static_cast<double>(unit->num_channels()));
  torch::Tensor total = torch::zeros({}, torch::kDouble);
  for (const auto& op : counted_) {
    torch::Tensor share = side_share(op.out_units, op.out_width, widths, channels);
    if (!op.depthwise) {
      share = share * side_share(op.in_units, op.in_width, widths, channels);
    } else if (op.out_units.empty()) {
      share = side_share(op.in_units, op.in_width, widths, channels);
    }
    total = total + share * op.flops;
  }
  return total / 1e6;
}

double DMCP::mflops_of(const Json& choices) {
  // Counted on the subnet itself, then the widths put back.
  const Json masks = mutator().current_masks(), before = mutator().current_choices();
  mutator().set_choices(choices);
  const bool gated = dmcp_mutator().gated();
  dmcp_mutator().set_gated(false);
  double total = 0;
  for (const auto& layer : count_report().layers) {
    if (!has_backbone_ || layer.path.rfind("backbone.", 0) == 0) total += layer.flops;
  }
  dmcp_mutator().set_gated(gated);
  mutator().load_masks(masks, before);
  return total / 1e6;
}

Json DMCP::expected_subnet() {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> widths = dmcp_mutator().expected_channels();
  Json out = Json::object();
  const auto& units = mutator().units();
  for (size_t i = 0; i < units.size(); ++i) {
    const int64_t width = std::clamp<int64_t>(std::llround(widths[i].item<double>()), 1, units[i]->num_channels());
    out[units[i]->name()] = units[i]->choice_of_width(width);
  }
  return out;
}

LossMap DMCP::subnet_step(const std::string& kind, const Batch& batch, OptimWrapper& weights) {
  DMCPChannelMutator& m = dmcp_mutator();
  std::string mode = kind;
  if (kind == "arch_random") mode = arch_train_ ? "direct" : "random";
  if (kind == "scheduled_random") {
    mode = m.uniform() > cur_sample_prob_ && arch_train_ ? "direct" : "random";
    cur_sample_prob_ *= 0.9999;
  }
  m.sample_subnet(mode, /*gated=*/arch_train_);
  LossMap losses;
  if (mode == "max") {
    MaybeRecording recording(distiller_ ? &distiller_->teacher_recorders() : nullptr);
    losses = architecture_->loss(batch);
  } else {
    MaybeRecording recording(distiller_ ? &distiller_->student_recorders() : nullptr);
    losses = architecture_->loss(batch);
    if (distiller_ && iteration() > options_.distillation_times) {
      for (auto& item : distiller_->compute_distill_losses()) losses.emplace_back("distill." + item.first, item.second);
    }
  }
  const torch::Tensor total = total_loss(losses);
  weights.update_params(total);
  total_ = total_ + total.detach();
  // Two sampled subnets of one mode in a step log apart: random_subnet, random_subnet_2.
  std::string prefix = mode + "_subnet";
  if (++prefix_uses_[prefix] > 1) prefix += "_" + std::to_string(prefix_uses_[prefix]);
  return prefixed(prefix + ".", losses, total);
}

LossMap DMCP::arch_step(const Batch& batch, OptimWrapper& weights, OptimWrapper& arch) {
  DMCPChannelMutator& m = dmcp_mutator();
  arch.zero_grad();
  eval();
  // The task loss of the gated widest subnet reaches the architecture parameters.
  m.sample_subnet("max", /*gated=*/true);
  const torch::Tensor task = total_loss(architecture_->loss(batch));
  arch.update_params(task);
  weights.zero_grad();  // that backward's weight gradients belong to no weight step
  // Then the FLOPs of the expected widths.
  m.set_gated(false);
  const torch::Tensor expected = expected_mflops();
  const torch::Tensor flops_loss =
      (dmcp_flops_loss(expected, options_.target_flops, options_.flops_loss_type) * options_.flop_loss_weight)
          .to(torch::kFloat);
  arch.update_params(flops_loss);
  train();
  return {{"arch.loss", task.detach()}, {"flops.loss", flops_loss.detach()}, {"expected_mflops", expected.detach()}};
}

LossMap DMCP::train_step(const Batch& batch, OptimWrapper& optim) {
  OptimWrapperDict& wrappers = as_optim_wrapper_dict(optim, "DMCP");
  OptimWrapper& weights = wrappers.at("architecture");
  OptimWrapper& arch = wrappers.at("mutator");
  const int64_t it = iteration();
  if (!arch_train_ && it > options_.arch_start_train) {
    arch_train_ = true;
    spdlog::info("DMCP: architecture training starts at iteration {}", it);
  }
  LossMap logged;
  total_ = torch::zeros({});
  prefix_uses_.clear();
  for (const auto& kind : options_.strategy) {
    for (auto& item : subnet_step(kind, batch, weights)) logged.push_back(std::move(item));
  }
  if (arch_train_ && it % options_.arch_train_freq == 0) {
    for (auto& item : arch_step(batch, weights, arch)) logged.push_back(std::move(item));
  }
  count_iteration();
  logged.emplace_back("loss", total_);
  return logged;
}

Json DMCP::extra_state() const {
  Json state = ItePruneAlgorithm::extra_state();
  state["arch_train"] = arch_train_;
  state["cur_sample_prob"] = cur_sample_prob_;
  state["generator"] = static_cast<const DMCPChannelMutator&>(mutator()).generator_state();
  return state;
}

void DMCP::load_extra_state(const Json& state) {
  ItePruneAlgorithm::load_extra_state(state);
  if (!state.is_object()) return;
  arch_train_ = state.value("arch_train", false);
  cur_sample_prob_ = state.value("cur_sample_prob", 1.0);
  if (state.contains("generator")) dmcp_mutator().set_generator_state(state["generator"].get<std::string>());
}

namespace {

/// MMRazor's DMCPSubnetHook: after training, the expected subnet and up to
/// `subnet_sample_num` direct samples within 5% of the FLOPs target, as sub_model
/// fix_subnet files in work_dir/model_sample.
class DMCPSubnetHook : public Hook {
 public:
  explicit DMCPSubnetHook(int64_t samples) : samples_(samples) {}
  std::string name() const override { return "DMCPSubnetHook"; }
  void after_run(Runner& runner) override {
    auto* dmcp = dynamic_cast<DMCP*>(&runner.model());
    RAZOR_CHECK(dmcp, runner.config().file, ": DMCPSubnetHook samples the subnets of a DMCP model");
    if (!runner.write_files()) return;
    const fs::path dir = fs::path(runner.work_dir()) / "model_sample";
    fs::create_directories(dir);
    const Json expected = dmcp->expected_subnet();
    write_file_atomically((dir / "expected_ch.json").string(), expected.dump(4) + "\n");
    spdlog::info("DMCPSubnetHook: the expected subnet ({:.3f} MFLOPs) is in {}", dmcp->mflops_of(expected),
                 (dir / "expected_ch.json").string());
    const double target = dmcp->dmcp_options().target_flops;
    int64_t written = 0;
    for (int64_t tries = 0; written < samples_ && tries < 100 * samples_; ++tries) {
      const Json subnet = dmcp->dmcp_mutator().sample_subnet_choices("direct");
      const double mflops = dmcp->mflops_of(subnet);
      if (std::abs(mflops - target) > 0.05 * target) continue;
      const fs::path file = dir / ("subnet_" + std::to_string(written++) + ".json");
      write_file_atomically(file.string(), subnet.dump(4) + "\n");
      spdlog::info("DMCPSubnetHook: a subnet of {:.3f} MFLOPs is in {}", mflops, file.string());
    }
    if (written < samples_) {
      spdlog::warn("DMCPSubnetHook: {} of {} direct samples came within 5% of {} MFLOPs", written, samples_, target);
    }
  }

 private:
  int64_t samples_;
};

}  // namespace

void register_dmcp() {
  model_registry().add("DMCP", [](Args& args, const BuildContext& context) {
    auto [architecture, build_copy] = build_architecture_to_prune(args, context, "DMCP");
    ChannelMutatorOptions mutator_options = channel_mutator_options_from(args, "mutator_cfg", "DMCPChannelMutator");
    std::array<double, 3> pruning_cfg = {0.1, 1.0, 0.05};
    if (!mutator_options.pruning_cfg.is_null()) {
      for (size_t i = 0; i < 3; ++i) pruning_cfg[i] = mutator_options.pruning_cfg[i].get<double>();
    }
    auto mutator = std::make_unique<DMCPChannelMutator>(mutator_options, pruning_cfg,
                                                        context.runner ? context.runner->seed() : 0);
    DMCPOptions o;
    o.strategy = args.get<std::vector<std::string>>("strategy", o.strategy);
    o.arch_start_train = args.get<int64_t>("arch_start_train", o.arch_start_train);
    o.arch_train_freq = args.get<int64_t>("arch_train_freq", o.arch_train_freq);
    o.distillation_times = args.get<int64_t>("distillation_times", o.distillation_times);
    o.target_flops = args.get<double>("target_flops", o.target_flops);
    o.flops_loss_type = args.get<std::string>("flops_loss_type", o.flops_loss_type);
    o.flop_loss_weight = args.get<double>("flop_loss_weight", o.flop_loss_weight);
    std::shared_ptr<ConfigurableDistiller> distiller;
    if (args.has("distiller")) {
      Args distiller_args = args.sub("distiller");
      distiller = distiller_registry().build(distiller_args, context, "ConfigurableDistiller");
    }
    auto algorithm = std::make_shared<DMCP>(architecture, std::move(mutator), o, distiller, context.runner,
                                            std::move(build_copy));
    nn::assign_paths(*algorithm);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
  hook_registry().add("DMCPSubnetHook", [](Args& args, const BuildContext&) {
    const int64_t samples = args.get<int64_t>("subnet_sample_num", 10);
    if (samples < 0) args.fail("subnet_sample_num", "must be at least 0");
    return std::make_shared<DMCPSubnetHook>(samples);
  });
}

}  // namespace razor
