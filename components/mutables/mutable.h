#pragma once
// The base of every searchable choice (MMRazor's BaseMutable): a razor module with a set of
// choices, a current choice, and sampling. A choice is a JSON value, so one type covers op
// names ("shuffle_3x3"), values (5, 0.5) and routes (["edge_0", "edge_2"]), and subnets
// print, broadcast and round-trip through YAML unchanged.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "components/nn/module.h"
#include "engine/config.h"

namespace razor {

using Choice = Json;

class Mutable : public nn::Module {
 public:
  explicit Mutable(const std::string& type_name, std::string alias = "")
      : nn::Module(type_name), alias_(std::move(alias)) {}

  /// Every choice, in a stable order (sorted for ordered mutables).
  virtual std::vector<Choice> choices() const = 0;
  virtual Choice current_choice() const = 0;
  /// Sets the choice; one that is not among `choices()` is a config error naming both.
  virtual void set_current_choice(const Choice& choice) = 0;
  /// Whether `choice` is one of this mutable's choices (as set_current_choice would take it).
  virtual bool accepts(const Choice& choice) const;
  /// A random choice (uniform unless the mutable says otherwise) from `generator`, which
  /// the mutator seeds identically on every rank.
  virtual Choice sample_choice(at::Generator& generator) const;

  /// Whether choices have an order, so that min and max mean something. Op mutables order
  /// their candidates by parameter count (max = the largest candidate).
  virtual bool ordered() const { return false; }
  virtual Choice min_choice() const;
  virtual Choice max_choice() const;

  /// Sets the choice and freezes it: later `set_current_choice` calls with another value are
  /// errors, and op mutables drop the candidates that were not chosen.
  virtual void fix_chosen(const Choice& chosen);
  bool is_fixed() const { return fixed_; }

  /// {"chosen": current choice, "all_choices": [...]} (MMRazor's DumpChosen).
  Json dump_chosen() const;

  /// Mutables with the same alias share one choice in a mutator's search group, and a subnet
  /// file names them by alias.
  const std::string& alias() const { return alias_; }
  void set_alias(std::string alias) { alias_ = std::move(alias); }
  /// The alias, else the dotted path: how subnet files and messages name this mutable.
  std::string display_name() const;

  /// Whether the mutable is a module mutable (op, route) rather than a value one; the
  /// mutator names its groups "module_<n>" or "value_<n>" after it.
  virtual bool is_module_mutable() const { return true; }

 protected:
  /// Config error: `choice` is not one of `choices()`.
  [[noreturn]] void fail_choice(const Choice& choice) const;

  bool fixed_ = false;

 private:
  std::string alias_;
};

/// A uniform integer in [0, n) from `generator`.
int64_t sample_index(at::Generator& generator, int64_t n);
/// A uniform double in [0, 1) from `generator`.
double sample_uniform(at::Generator& generator);

/// "a, b, c" of a list of choices, as messages print them.
std::string describe_choices(const std::vector<Choice>& choices);

}  // namespace razor
