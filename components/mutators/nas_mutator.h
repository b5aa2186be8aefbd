#pragma once
// MMRazor's NasMutator: finds every mutable under a supernet, forms search groups (mutables
// with one alias, or listed together in `custom_groups`, share one choice), and samples,
// sets and reports choices by group. Differentiable mutables (DiffMutableOP and routes with
// an architecture parameter) get one α per group, owned here, so that an algorithm steps
// them with an optimiser of their own ("mutator" in the optim_wrapper table).
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>

#include "components/mutables/mutable.h"
#include "components/mutators/subnet_mutator.h"
#include "engine/config.h"

namespace razor {

/// Mutables that share one choice, under a stable key ("module_0", "value_3").
struct SearchGroup {
  std::string key;
  /// The members' names relative to the supernet ("backbone.layers.0.0").
  std::vector<std::string> names;
  std::vector<Mutable*> members;
  /// The alias the members share, or "" (the first member's name then names the group).
  std::string alias;
  /// The group's α (undefined for non-differentiable groups).
  torch::Tensor arch_param;

  Mutable& front() const { return *members.front(); }
  /// How a subnet file names this group: the alias, else the first member's name.
  const std::string& subnet_name() const { return alias.empty() ? names.front() : alias; }
};

struct NasMutatorOptions {
  /// Lists of mutable names (or aliases) that share one choice.
  std::vector<std::vector<std::string>> custom_groups;
  /// Seeds the generator samples come from (identical on every rank) and α's init.
  uint64_t seed = 0;
  /// Whether differentiable groups get an α (off for a mutator that only reads or fixes).
  bool create_arch_params = true;
};

class NasMutator : public torch::nn::Module, public SubnetMutator {
 public:
  explicit NasMutator(NasMutatorOptions options = {});

  /// Collects the mutables of `supernet` (fixed ones excepted) and forms the groups.
  /// Call once, after the supernet is built (and any subnet fixed).
  void prepare(torch::nn::Module& supernet);
  bool prepared() const { return prepared_; }

  const std::vector<SearchGroup>& search_groups() const { return groups_; }
  /// The group by key; an unknown key is a config error listing the keys.
  const SearchGroup& group(const std::string& key) const;

  /// {group key: choice} for `kind` "random" (from the shared generator), "max" or "min".
  Json sample_choices(const std::string& kind = "random") { return sample_choices(kind, generator_); }
  /// The same, drawing random choices from `generator` (validation draws its own subnets, so
  /// that it does not change which subnets training samples).
  Json sample_choices(const std::string& kind, at::Generator& generator) override;
  /// Sets every group in `choices` ({group key: choice}); a group missing from it, an
  /// unknown key or a choice that is not valid is a config error.
  void set_choices(const Json& choices) override;
  Json current_choices() const override;
  Json max_choices() const { return const_cast<NasMutator*>(this)->sample_choices("max"); }
  Json min_choices() const { return const_cast<NasMutator*>(this)->sample_choices("min"); }

  /// {subnet name: {"chosen": choice}} of the current choices, as a subnet YAML holds them.
  Json current_subnet() const { return subnet_of(current_choices()); }
  /// The same for `choices` ({group key: choice}).
  Json subnet_of(const Json& choices) const;
  /// {group key: choice} from a subnet ({subnet name: {"chosen": choice}} or
  /// {subnet name: choice}); missing or unknown names are config errors naming them.
  Json choices_from_subnet(const Json& subnet, const std::string& origin = "subnet") const;

  /// The α of every differentiable group, in group order.
  std::vector<torch::Tensor> arch_params() const;
  bool has_arch_params() const { return !arch_params().empty(); }

  /// The generator samples come from: seeded identically on every rank, so every rank draws
  /// the same subnet.
  at::Generator& generator() { return generator_; }
  /// The generator's state as a hex string, and back (checkpoints and search checkpoints).
  std::string generator_state() const;
  void set_generator_state(const std::string& state);

 private:
  NasMutatorOptions options_;
  std::vector<SearchGroup> groups_;
  std::shared_ptr<torch::nn::Module> arch_param_module_;
  at::Generator generator_;
  bool prepared_ = false;
};

}  // namespace razor
