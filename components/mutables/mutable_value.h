#pragma once
// Searchable scalars (MMRazor's MutableValue, OneShotMutableValue): a kernel size, an
// expand ratio, a depth. Modules read `current_choice()`; `derived_mutable.h` derives
// channel counts from them.
#include <vector>

#include "components/mutables/mutable.h"

namespace razor {

/// Choices in the given order; the first is the default. Numbers are ordered by value.
class MutableValue : public Mutable {
 public:
  explicit MutableValue(std::vector<Choice> value_list, std::string alias = "")
      : MutableValue("MutableValue", std::move(value_list), /*default_max=*/false,
                     std::move(alias)) {}

  std::vector<Choice> choices() const override { return values_; }
  Choice current_choice() const override { return current_; }
  void set_current_choice(const Choice& choice) override;
  /// 3 and 3.0 are the same value (a YAML file may write either).
  bool accepts(const Choice& choice) const override { return find(choice) != nullptr; }
  bool ordered() const override { return numeric_; }
  Choice min_choice() const override;
  Choice max_choice() const override;
  bool is_module_mutable() const override { return false; }
  /// The current choice as a number (values must be numbers).
  double value() const;

 protected:
  MutableValue(const std::string& type_name, std::vector<Choice> value_list, bool default_max,
               std::string alias);
  torch::Tensor forward(const torch::Tensor& input) override;
  /// The value list's entry equal to `choice`, or null.
  const Choice* find(const Choice& choice) const;

  std::vector<Choice> values_;
  Choice current_;
  bool numeric_ = true;
};

/// The one-shot value of BigNAS/OFA search spaces: choices sorted, min = first, max = last,
/// the default is max, samples are uniform.
class OneShotMutableValue : public MutableValue {
 public:
  explicit OneShotMutableValue(std::vector<Choice> value_list, std::string alias = "")
      : MutableValue("OneShotMutableValue", std::move(value_list), /*default_max=*/true,
                     std::move(alias)) {}
};

}  // namespace razor
