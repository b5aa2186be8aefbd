#include "components/mutators/nas_mutator.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>

#include "components/mutables/choice_route.h"
#include "components/mutables/mutable_op.h"
#include "engine/dist.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

namespace {
/// Differentiable: its group gets an α.
bool is_differentiable(const Mutable& m) {
  if (dynamic_cast<const DiffMutableOP*>(&m)) return true;
  auto* route = dynamic_cast<const DiffChoiceRoute*>(&m);
  return route && route->with_arch_param();
}

int64_t num_choices(const Mutable& m) { return static_cast<int64_t>(m.choices().size()); }

void bind_arch_param(Mutable& m, const torch::Tensor& alpha) {
  if (auto* op = dynamic_cast<DiffMutableOP*>(&m)) op->set_arch_param(alpha);
  if (auto* route = dynamic_cast<DiffChoiceRoute*>(&m)) route->set_arch_param(alpha);
}

class ArchParams : public torch::nn::Module {
 public:
  ArchParams() : torch::nn::Module("ParameterDict") {}
  torch::Tensor add(const std::string& name, torch::Tensor value) {
    return register_parameter(name, std::move(value));
  }
};
}  // namespace

NasMutator::NasMutator(NasMutatorOptions options)
    : torch::nn::Module("NasMutator"),
      options_(std::move(options)),
      generator_(dist::shared_generator(options_.seed, /*stream=*/0x6e61736d)) {}

void NasMutator::prepare(torch::nn::Module& supernet) {
  RAZOR_ASSERT(!prepared_);
  prepared_ = true;
  // Every free mutable, by its name under the supernet.
  std::vector<std::pair<std::string, Mutable*>> found;
  for (const auto& item : supernet.named_modules("", /*include_self=*/false)) {
    auto* m = dynamic_cast<Mutable*>(item.value().get());
    if (m && !m->is_fixed()) found.emplace_back(item.key(), m);
  }
  auto find_by_name = [&](const std::string& name) -> std::vector<size_t> {
    std::vector<size_t> out;
    for (size_t i = 0; i < found.size(); ++i) {
      if (found[i].first == name || found[i].second->alias() == name) out.push_back(i);
    }
    return out;
  };

  std::vector<int64_t> group_of(found.size(), -1);
  std::vector<std::vector<size_t>> members;
  std::vector<std::string> aliases;
  for (size_t g = 0; g < options_.custom_groups.size(); ++g) {
    std::vector<size_t> group;
    for (const auto& name : options_.custom_groups[g]) {
      const auto hits = find_by_name(name);
      if (hits.empty()) {
        std::vector<std::string> names;
        for (const auto& f : found) names.push_back(f.first);
        throw config_error("mutator.custom_groups[", g, "]: no mutable is named \"", name, "\"",
                           did_you_mean(name, names));
      }
      for (size_t i : hits) {
        RAZOR_CHECK(group_of[i] < 0 || group_of[i] == static_cast<int64_t>(members.size()),
                    "mutator.custom_groups[", g, "]: \"", found[i].first,
                    "\" is already in another custom group");
        if (group_of[i] < 0) group.push_back(i);
        group_of[i] = static_cast<int64_t>(members.size());
      }
    }
    members.push_back(group);
    aliases.push_back("");
  }
  // Then alias groups and single mutables, in module order.
  std::map<std::string, int64_t> alias_group;
  for (size_t i = 0; i < found.size(); ++i) {
    if (group_of[i] >= 0) continue;
    const std::string& alias = found[i].second->alias();
    if (!alias.empty()) {
      auto it = alias_group.find(alias);
      if (it != alias_group.end()) {
        group_of[i] = it->second;
        members[static_cast<size_t>(it->second)].push_back(i);
        continue;
      }
      alias_group[alias] = static_cast<int64_t>(members.size());
    }
    group_of[i] = static_cast<int64_t>(members.size());
    members.push_back({i});
    aliases.push_back(alias);
  }
  // Sort each group's members into module order, and key groups by their first member's
  // position so that keys do not depend on how the config lists custom groups.
  for (auto& group : members) std::sort(group.begin(), group.end());
  std::vector<size_t> order(members.size());
  for (size_t g = 0; g < order.size(); ++g) order[g] = g;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return members[a].front() < members[b].front(); });

  arch_param_module_ = register_module("arch_params", std::make_shared<ArchParams>());
  auto* params = static_cast<ArchParams*>(arch_param_module_.get());
  for (size_t n = 0; n < order.size(); ++n) {
    const auto& indices = members[order[n]];
    SearchGroup group;
    Mutable& first = *found[indices.front()].second;
    group.key = std::string(first.is_module_mutable() ? "module_" : "value_") + std::to_string(n);
    group.alias = aliases[order[n]];
    const bool diff = is_differentiable(first);
    for (size_t i : indices) {
      Mutable& m = *found[i].second;
      RAZOR_CHECK(m.choices() == first.choices(), "mutator: \"", found[i].first, "\" and \"",
                  found[indices.front()].first,
                  "\" share a search group but have different choices (",
                  describe_choices(m.choices()), " vs ", describe_choices(first.choices()), ")");
      RAZOR_CHECK(is_differentiable(m) == diff, "mutator: \"", found[i].first,
                  "\" is differentiable and \"", found[indices.front()].first,
                  "\" is not; they cannot share a search group");
      group.names.push_back(found[i].first);
      group.members.push_back(&m);
    }
    if (diff && options_.create_arch_params) {
      // MMRazor's init: randn * 1e-3, here from the shared generator (equal on every rank).
      torch::Tensor alpha = torch::randn({num_choices(first)}, generator_, torch::kFloat) * 1e-3;
      group.arch_param = params->add(group.key, alpha);
      for (Mutable* m : group.members) bind_arch_param(*m, group.arch_param);
    }
    // Members start on one choice.
    for (Mutable* m : group.members) m->set_current_choice(first.current_choice());
    groups_.push_back(std::move(group));
  }
}

const SearchGroup& NasMutator::group(const std::string& key) const {
  for (const auto& g : groups_) {
    if (g.key == key) return g;
  }
  std::vector<std::string> keys;
  for (const auto& g : groups_) keys.push_back(g.key);
  throw config_error("mutator: no search group \"", key, "\"", did_you_mean(key, keys),
                     " (groups: ", join(keys, ", "), ")");
}

Json NasMutator::sample_choices(const std::string& kind, at::Generator& generator) {
  RAZOR_CHECK(kind == "random" || kind == "max" || kind == "min",
              "mutator: sample kind must be \"random\", \"max\" or \"min\", got \"", kind, "\"");
  Json out = Json::object();
  for (const auto& g : groups_) {
    const Mutable& m = g.front();
    out[g.key] = kind == "random" ? m.sample_choice(generator)
                 : kind == "max"  ? m.max_choice()
                                  : m.min_choice();
  }
  return out;
}

void NasMutator::set_choices(const Json& choices) {
  RAZOR_CHECK(choices.is_object(), "mutator: choices must be a table {group: choice}, got ",
              choices.dump());
  std::vector<std::string> keys;
  for (const auto& g : groups_) keys.push_back(g.key);
  for (const auto& item : choices.items()) {
    RAZOR_CHECK(std::find(keys.begin(), keys.end(), item.key()) != keys.end(),
                "mutator: no search group \"", item.key(), "\"", did_you_mean(item.key(), keys));
  }
  for (const auto& g : groups_) {
    auto it = choices.find(g.key);
    RAZOR_CHECK(it != choices.end(), "mutator: no choice for search group \"", g.key, "\" (",
                g.subnet_name(), ")");
    for (Mutable* m : g.members) m->set_current_choice(*it);
  }
}

Json NasMutator::current_choices() const {
  Json out = Json::object();
  for (const auto& g : groups_) out[g.key] = g.front().current_choice();
  return out;
}

Json NasMutator::subnet_of(const Json& choices) const {
  Json out = Json::object();
  for (const auto& g : groups_) out[g.subnet_name()] = Json{{"chosen", choices.at(g.key)}};
  return out;
}

Json NasMutator::choices_from_subnet(const Json& subnet, const std::string& origin) const {
  RAZOR_CHECK(subnet.is_object(), origin, ": a subnet is a table {mutable name: {chosen: value}}");
  std::vector<std::string> names;
  for (const auto& g : groups_) names.push_back(g.subnet_name());
  // A subnet may name every member of an unaliased group by its own name.
  std::map<std::string, const SearchGroup*> by_name;
  for (const auto& g : groups_) {
    by_name[g.subnet_name()] = &g;
    for (const auto& n : g.names) by_name.emplace(n, &g);
  }
  Json out = Json::object();
  for (const auto& item : subnet.items()) {
    auto it = by_name.find(item.key());
    if (it == by_name.end()) {
      throw config_error(origin, ": \"", item.key(), "\" is not a mutable of this model",
                         did_you_mean(item.key(), names), " (", names.size(), " mutables: ",
                         join(names, ", "), ")");
    }
    const Json& value = item.value().is_object() && item.value().contains("chosen")
                            ? item.value()["chosen"]
                            : item.value();
    const SearchGroup& g = *it->second;
    // Check the value now, so that the error names the file and the mutable.
    RAZOR_CHECK(g.front().accepts(value), origin, ": ", item.key(), ": ", value.dump(),
                " is not one of its choices (", describe_choices(g.front().choices()), ")");
    out[g.key] = value;
  }
  for (const auto& g : groups_) {
    RAZOR_CHECK(out.contains(g.key), origin, ": no choice for mutable \"", g.subnet_name(),
                "\" (choices: ", describe_choices(g.front().choices()), ")");
  }
  return out;
}

std::string NasMutator::generator_state() const { return dist::generator_state_hex(generator_); }

void NasMutator::set_generator_state(const std::string& state) { dist::set_generator_state_hex(generator_, state); }

std::vector<torch::Tensor> NasMutator::arch_params() const {
  std::vector<torch::Tensor> out;
  for (const auto& g : groups_) {
    if (g.arch_param.defined()) out.push_back(g.arch_param);
  }
  return out;
}

}  // namespace razor
