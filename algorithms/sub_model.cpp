#include "algorithms/sub_model.h"

#include <torch/torch.h>

#include <filesystem>
#include <set>
#include <string>

#include "algorithms/architecture_weights.h"
#include "algorithms/pruning/ite_prune_algorithm.h"
#include "components/mutators/channel_mutator.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/module.h"
#include "engine/error.h"
#include "engine/model.h"

namespace razor {

namespace {

/// Mode "mutator"'s fix_subnet: MMRazor's mutator file (what ItePruneValLoop writes:
/// {type = "ChannelMutator", channel_unit_cfg = {type, default_args, units}, parse_cfg}) or
/// the short form {unit name: channel count or ratio}, whose units keep their first channels.
ChannelMutatorOptions fix_subnet_options(Args& args, const std::string& config_dir) {
  const Json fix = table_or_file(args, "fix_subnet", config_dir);
  if (!fix.is_object())
    args.fail("fix_subnet", "expected {unit name: channel count or ratio}, got " + fix.dump());
  ChannelMutatorOptions options;
  if (fix.contains("channel_unit_cfg")) {
    options = ChannelMutatorOptions::from(fix, args.where("fix_subnet"), config_dir);
  } else {
    for (const auto& [name, choice] : fix.items()) {
      if (!choice.is_number()) {
        args.fail("fix_subnet", "unit \"" + name + "\": expected a channel count or ratio, got " +
                                    choice.dump() +
                                    " (a NAS subnet's {chosen = ...} needs mode = \"mutable\")");
      }
      options.units[name] = {
          {"init_args", {{"choice_mode", choice.is_number_integer() ? "number" : "ratio"}}},
          {"choice", choice}};
    }
  }
  if (args.has("demo_input")) {
    options.parse = channel::ChannelAnalyzer::options_from(
        Json{{"demo_input", args.raw("demo_input")}}, args.where());
  }
  return options;
}

/// MMRazor's default mode is "mutable"; razor reads it from fix_subnet when not given: a
/// YAML file or {name: {chosen = ...}} is a NAS subnet, anything else channel widths.
std::string mode_of(Args& args) {
  if (args.has("mode")) {
    const std::string mode = args.require<std::string>("mode");
    if (mode != "mutable" && mode != "mutator") {
      args.fail("mode",
                "expected \"mutable\" (a NAS subnet) or \"mutator\" (channel widths), got \"" +
                    mode + "\"");
    }
    return mode;
  }
  if (!args.has("fix_subnet")) return "mutator";  // the error names fix_subnet
  const Json& fix = args.raw("fix_subnet");
  if (fix.is_string()) {
    const std::string file = fix.get<std::string>();
    const std::string ext = std::filesystem::path(file).extension().string();
    return ext == ".yaml" || ext == ".yml" ? "mutable" : "mutator";
  }
  if (fix.is_object() && !fix.empty() && fix.begin()->is_object() &&
      fix.begin()->contains("chosen"))
    return "mutable";
  return "mutator";
}

}  // namespace

void register_sub_model() {
  model_registry().add("sub_model", [](Args& args, const BuildContext& context) {
    const std::string mode = mode_of(args);
    Args cfg = args.sub("cfg");
    auto architecture = build_model_as<Model>(cfg, context, "an architecture");
    nn::assign_paths(*architecture);
    const bool from_supernet = args.get<bool>("init_weight_from_supernet", false);
    const std::string checkpoint = pretrained_checkpoint(args, "a sub_model");
    if (from_supernet && checkpoint.empty()) {
      args.fail("init_weight_from_supernet",
                "needs init_cfg = { type = \"Pretrained\", checkpoint = ... }, the full "
                "model's weights");
    }
    const std::string weights_key = args.where("init_cfg.checkpoint");
    if (from_supernet)
      load_architecture_weights(*architecture, checkpoint, args.config(), weights_key);
    if (mode == "mutable") {
      const std::string origin = args.raw("fix_subnet").is_string()
                                     ? args.raw("fix_subnet").get<std::string>()
                                     : args.where("fix_subnet");
      const Json subnet = table_or_file(args, "fix_subnet", config_dir_of(args));
      if (!subnet.is_object())
        args.fail("fix_subnet", "expected {mutable name: {chosen = value}}, got " + subnet.dump());
      load_fix_subnet(*architecture, subnet, origin);
      inline_fixed_ops(*architecture);
      if (args.has("demo_input")) args.accept("demo_input");
    } else {
      ChannelMutatorOptions options = fix_subnet_options(args, config_dir_of(args));
      // With the subnet's own weights loaded after the cut, which channels a unit keeps does
      // not matter: the first ones, without ranking them (a Taylor unit would need gradients).
      const std::set<std::string> ranked = {"L1MutableChannelUnit", "L2MutableChannelUnit",
                                            "FPGMMutableChannelUnit", "BNScaleMutableChannelUnit",
                                            "TaylorMutableChannelUnit"};
      if (!from_supernet && ranked.count(options.unit_type))
        options.unit_type = "SequentialMutableChannelUnit";
      ChannelMutator mutator(options);
      mutator.prepare_from_supernet(*architecture);
      mutator.make_static();
    }
    if (!from_supernet && !checkpoint.empty())
      load_architecture_weights(*architecture, checkpoint, args.config(), weights_key);
    return std::static_pointer_cast<torch::nn::Module>(architecture);
  });
}

}  // namespace razor
