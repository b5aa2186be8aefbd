#pragma once
// What the loops that evaluate or search subnets need of a mutator, whatever it mutates: op
// and value choices (NasMutator) or channel widths (ChannelMutator). Choices are
// {key: choice} as the mutator names them; "random" draws come from the generator given,
// which the caller seeds identically on every rank.
#include <string>

#include <ATen/core/Generator.h>

#include "engine/config.h"

namespace razor {

class SubnetMutator {
 public:
  virtual ~SubnetMutator() = default;
  /// The subnet of `kind` "max", "min" or "random".
  virtual Json sample_choices(const std::string& kind, at::Generator& generator) = 0;
  virtual void set_choices(const Json& choices) = 0;
  virtual Json current_choices() const = 0;
  /// Everything set_choices changes, to put back exactly afterwards (the choices, unless a
  /// choice alone does not say which channels are kept).
  virtual Json state() const { return current_choices(); }
  virtual void restore(const Json& state) { set_choices(state); }
};

}  // namespace razor
