#include "components/mutators/channel_mutator.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "components/nn/weighted_op.h"
#include "engine/error.h"
#include "engine/strings.h"
#include "engine/text_file.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

/// Each mutator type and the unit type it makes unless channel_unit_cfg.type says otherwise.
const std::map<std::string, std::string> kDefaultUnitType = {
    {"ChannelMutator", "SequentialMutableChannelUnit"},
    {"OneShotChannelMutator", "OneShotMutableChannelUnit"},
    {"SlimmableChannelMutator", "SlimmableChannelUnit"},
    {"GroupFisherChannelMutator", "GroupFisherChannelUnit"},
    {"DCFFChannelMutator", "DCFFChannelUnit"},
    {"DMCPChannelMutator", "DMCPChannelUnit"},
};

}  // namespace

ChannelMutatorOptions ChannelMutatorOptions::from(const Json& table, const std::string& where,
                                                  const std::string& config_dir) {
  ChannelMutatorOptions o;
  bool unit_type_given = false;
  // The type first: it decides which keys there are.
  if (table.contains("type")) {
    const Json& v = table["type"];
    RAZOR_CHECK(v.is_string() && kDefaultUnitType.count(v.get<std::string>()), where,
                ".type: expected one of ChannelMutator, OneShotChannelMutator, SlimmableChannelMutator, "
                "GroupFisherChannelMutator, DCFFChannelMutator, DMCPChannelMutator; got ", v.dump());
    o.type = v.get<std::string>();
  }
  for (const auto& [key, v] : table.items()) {
    if (key == "type") {
      continue;
    } else if (key == "pruning_cfg" && o.type == "DMCPChannelMutator") {
      RAZOR_CHECK(v.is_array() && v.size() == 3, where, ".pruning_cfg: expected [min_rate, max_rate, offset], got ",
                  v.dump());
      o.pruning_cfg = v;
    } else if (key == "parse_cfg") {
      o.parse = channel::ChannelAnalyzer::options_from(v, where + ".parse_cfg");
    } else if (key == "channel_unit_cfg") {
      RAZOR_CHECK(v.is_object(), where, ".channel_unit_cfg: expected a table, got ", v.dump());
      for (const auto& [k, u] : v.items()) {
        const std::string at = where + ".channel_unit_cfg." + k;
        if (k == "type") {
          RAZOR_CHECK(u.is_string(), at, ": expected a unit type name, got ", u.dump());
          o.unit_type = u.get<std::string>();
          unit_type_given = true;
        } else if (k == "default_args") {
          RAZOR_CHECK(u.is_object(), at, ": expected a table, got ", u.dump());
          o.default_args = u;
        } else if (k == "units") {
          if (u.is_string()) {
            fs::path path = u.get<std::string>();
            if (path.is_relative() && !config_dir.empty()) path = fs::path(config_dir) / path;
            const std::string text = read_text_file(path.string(), at);
            try {
              o.units = Json::parse(text);
            } catch (const Json::parse_error& e) {
              throw config_error(path.string(), ": not valid JSON (", at, "): ", e.what());
            }
          } else {
            o.units = u;
          }
          RAZOR_CHECK(o.units.is_object(), at, ": expected {unit name: {...}}, got ", o.units.dump());
        } else {
          RAZOR_CHECK(false, at, ": unknown key (channel_unit_cfg takes type, default_args, units)");
        }
      }
    } else {
      RAZOR_CHECK(false, where, ": unknown key \"", key, "\" (ChannelMutator takes channel_unit_cfg, parse_cfg",
                  o.type == "DMCPChannelMutator" ? ", pruning_cfg" : "", ")");
    }
  }
  if (!unit_type_given) o.unit_type = kDefaultUnitType.at(o.type);
  return o;
}

ChannelMutator::ChannelMutator(ChannelMutatorOptions options) : options_(std::move(options)) {}

void ChannelMutator::prepare_from_supernet(Model& architecture) {
  const channel::ChannelAnalysis analysis = channel::ChannelAnalyzer(options_.parse).analyze(
      architecture, [&](const torch::Tensor& x) { return architecture.forward_tensor(x); });
  std::map<std::string, size_t> index;
  units_.clear();
  masks_.clear();
  for (const auto& spec : analysis.units) {
    Json args = options_.default_args;
    const Json* listed = options_.units.contains(spec.name) ? &options_.units[spec.name] : nullptr;
    if (listed) {
      RAZOR_CHECK(listed->is_object(), "channel_unit_cfg.units.", spec.name, ": expected a table, got ", listed->dump());
      if (listed->contains("init_args")) args.update((*listed)["init_args"]);
    }
    const std::string where = "channel_unit_cfg.units." + spec.name;
    auto unit = channel::make_unit(
        options_.unit_type, spec,
        channel::MutableChannelUnitOptions::from(args, where, spec.num_channels, options_.unit_type), where);
    unit->prepare_for_pruning();
    if (listed && listed->contains("choice")) unit->set_choice((*listed)["choice"]);
    index[spec.name] = units_.size();
    masks_.push_back(unit->mask());
    units_.push_back(std::move(unit));
  }
  for (const auto& [name, entry] : options_.units.items()) {
    if (index.count(name)) continue;
    std::vector<std::string> names;
    for (const auto& u : units_) names.push_back(u->name());
    throw config_error("channel_unit_cfg.units: the model has no channel unit \"", name, "\"",
                       did_you_mean(name, names));
  }
  apply();
}

size_t ChannelMutator::index_of(const std::string& name) const {
  std::vector<std::string> names;
  for (size_t i = 0; i < units_.size(); ++i) {
    if (units_[i]->name() == name) return i;
    names.push_back(units_[i]->name());
  }
  throw config_error("the model has no channel unit \"", name, "\"", did_you_mean(name, names));
}

channel::SequentialMutableChannelUnit& ChannelMutator::unit(const std::string& name) const {
  return *units_[index_of(name)];
}

void ChannelMutator::set_choices(const Json& choices) {
  RAZOR_CHECK(choices.is_object(), "channel choices: expected {unit name: choice}, got ", choices.dump());
  for (const auto& [name, choice] : choices.items()) {
    const size_t i = index_of(name);
    units_[i]->set_choice(choice);
    masks_[i] = units_[i]->mask();
  }
  apply();
}

Json ChannelMutator::sample_choices(const std::string& kind, at::Generator& generator) {
  RAZOR_CHECK(kind == "max" || kind == "min" || kind == "random", "channel choices: the kinds to sample are \"max\", "
              "\"min\" and \"random\", got \"", kind, "\"");
  Json out = Json::object();
  for (const auto& u : units_) {
    out[u->name()] = kind == "max" ? u->max_choice() : kind == "min" ? u->min_choice() : u->sample_choice(generator);
  }
  return out;
}

std::vector<Json> ChannelMutator::subnets() const {
  size_t count = 0;
  for (const auto& u : units_) {
    const auto* one_shot = dynamic_cast<const channel::OneShotMutableChannelUnit*>(u.get());
    RAZOR_CHECK(one_shot, u->name(), ": the subnets of a slimmable network are its units' candidate_choices; a ",
                u->type(), " has none");
    const size_t n = one_shot->candidate_choices().size();
    RAZOR_CHECK(count == 0 || n == count, u->name(), ": has ", n, " candidate_choices, the units before it ", count,
                "; the i-th subnet takes every unit's i-th candidate, so all need as many");
    count = n;
  }
  std::vector<Json> out(count, Json::object());
  for (const auto& u : units_) {
    const auto& candidates = static_cast<const channel::OneShotMutableChannelUnit&>(*u).candidate_choices();
    for (size_t i = 0; i < count; ++i) out[i][u->name()] = candidates[i];
  }
  return out;
}

Json ChannelMutator::current_masks() const {
  Json out = Json::object();
  for (size_t i = 0; i < units_.size(); ++i) {
    const torch::Tensor index = masks_[i].nonzero().flatten();
    out[units_[i]->name()] = std::vector<int64_t>(index.data_ptr<int64_t>(), index.data_ptr<int64_t>() + index.numel());
  }
  return out;
}

void ChannelMutator::load_masks(const Json& masks, const Json& choices) {
  RAZOR_CHECK(masks.is_object() && choices.is_object(), "channel masks: expected {unit name: [indices]}");
  for (const auto& [name, kept] : masks.items()) {
    const size_t index = index_of(name);
    auto& u = *units_[index];
    const Json& choice = choices.at(name);
    u.set_choice(choice);
    torch::Tensor mask = torch::zeros({u.num_channels()}, torch::kBool);
    for (const auto& i : kept) {
      RAZOR_CHECK(i.is_number_integer() && i.get<int64_t>() >= 0 && i.get<int64_t>() < u.num_channels(), name,
                  ": a kept channel must be in [0, ", u.num_channels(), "), got ", i.dump());
      mask[i.get<int64_t>()] = true;
    }
    // A ratio set from a width (set_width) may read back one channel short in floating point.
    const int64_t count = static_cast<int64_t>(kept.size());
    if (u.width() != count && choice.is_number_float() &&
        std::abs(choice.get<double>() * static_cast<double>(u.num_channels()) - static_cast<double>(count)) < 1e-6) {
      u.set_width(count);
    }
    RAZOR_CHECK(mask.sum().item<int64_t>() == u.width(), name, ": ", mask.sum().item<int64_t>(),
                " channels kept, its choice ", choices.at(name).dump(), " keeps ", u.width());
    masks_[index] = mask;
  }
  apply();
}

Json ChannelMutator::current_choices() const {
  Json out = Json::object();
  for (const auto& u : units_) out[u->name()] = u->current_choice();
  return out;
}

Json ChannelMutator::choice_template() const {
  Json out = Json::object();
  for (const auto& u : units_) out[u->name()] = u->max_choice();
  return out;
}

Json ChannelMutator::config_template(bool with_channels, bool with_init_args) const {
  channel::ChannelAnalysis analysis;
  for (const auto& u : units_) analysis.units.push_back(u->spec());
  Json out = channel::units_config(analysis, with_channels, false);
  for (const auto& u : units_) {
    Json entry = Json::object();
    if (with_init_args) entry["init_args"] = u->init_args();
    if (with_channels) entry["channels"] = out[u->name()]["channels"];
    entry["choice"] = u->current_choice();
    out[u->name()] = entry;
  }
  return out;
}

Json ChannelMutator::to_config() const {
  Json parse = {{"type", "ChannelAnalyzer"}, {"demo_input", options_.parse.demo_input}};
  if (!options_.parse.tracer_type.empty()) parse["tracer_type"] = options_.parse.tracer_type;
  Json out = {{"type", options_.type},
              {"channel_unit_cfg",
               {{"type", options_.unit_type},
                {"default_args", options_.default_args},
                {"units", config_template(/*with_channels=*/false, /*with_init_args=*/true)}}},
              {"parse_cfg", parse}};
  if (!options_.pruning_cfg.is_null()) out["pruning_cfg"] = options_.pruning_cfg;
  return out;
}

channel::ChannelSelection ChannelMutator::selection() const {
  std::vector<channel::ChannelUnitSpec> specs;
  for (const auto& u : units_) specs.push_back(u->spec());
  channel::ChannelSelection selection(std::move(specs));
  for (size_t i = 0; i < units_.size(); ++i) selection.keep(i, masks_[i]);
  return selection;
}

void ChannelMutator::set_mask(const std::string& name, const torch::Tensor& mask) {
  const size_t i = index_of(name);
  RAZOR_CHECK(mask.dim() == 1 && mask.size(0) == units_[i]->num_channels() && mask.any().item<bool>(), name,
              ": a mask must keep some of its ", units_[i]->num_channels(), " channels");
  masks_[i] = mask.to(torch::kBool).cpu();
  units_[i]->set_width(masks_[i].sum().item<int64_t>());
  apply();
}

const torch::Tensor& ChannelMutator::mask_of(const std::string& name) const { return masks_[index_of(name)]; }

void ChannelMutator::apply() const { selection().apply(); }

int64_t padded_width(int64_t width, int64_t channels, int64_t divisor) {
  RAZOR_CHECK(divisor >= 1, "a width divisor must be at least 1, got ", divisor);
  return std::min(channels, (width + divisor - 1) / divisor * divisor);
}

void ChannelMutator::make_static(int64_t divisor) {
  // Each unit's padding: the first pruned channels, as many as its rounded width needs.
  std::vector<torch::Tensor> padding(units_.size());
  for (size_t i = 0; i < units_.size(); ++i) {
    const int64_t width = masks_[i].sum().item<int64_t>();
    const int64_t extra = padded_width(width, units_[i]->num_channels(), divisor) - width;
    if (extra == 0) continue;
    const torch::Tensor pruned = masks_[i].logical_not().nonzero().flatten().narrow(0, 0, extra);
    padding[i] = torch::zeros_like(masks_[i]).index_fill_(0, pruned, true);
    masks_[i] = masks_[i].logical_or(padding[i]);
  }
  const channel::ChannelSelection cut = selection();
  cut.apply();
  // Where each padding channel enters a conv or linear: its position among the op's active
  // inputs, which are the cut op's inputs in order.
  std::vector<std::pair<nn::WeightedOp*, std::vector<int64_t>>> reads;
  for (size_t i = 0; i < units_.size(); ++i) {
    if (!padding[i].defined()) continue;
    const torch::Tensor added = padding[i].nonzero().flatten();
    for (const auto& c : units_[i]->spec().input_related) {
      auto* op = dynamic_cast<nn::WeightedOp*>(c.module);
      if (!op) continue;
      const torch::Tensor& active = op->active_in();
      std::vector<int64_t> positions;
      for (int64_t k = 0; k < added.size(0); ++k) {
        for (int64_t r = 0; r < c.expand_ratio; ++r) {
          const int64_t full = c.start + added[k].item<int64_t>() * c.expand_ratio + r;
          positions.push_back(active.defined() ? torch::searchsorted(active, torch::tensor(full)).item<int64_t>()
                                               : full);
        }
      }
      reads.emplace_back(op, std::move(positions));
    }
  }
  cut.make_static();
  torch::NoGradGuard no_grad;
  for (auto& [op, positions] : reads) {
    // Weight [out, in / groups, ...]: input p is column p % (in / groups) of group p / (in / groups).
    const int64_t per_group = op->weight.size(1);
    const int64_t groups = std::max<int64_t>(1, op->in_width() / per_group);
    const int64_t rows = op->weight.size(0) / groups;
    for (const int64_t p : positions) {
      op->weight.narrow(0, (p / per_group) * rows, rows).select(1, p % per_group).zero_();
    }
  }
  units_.clear();
  masks_.clear();
}

}  // namespace razor
