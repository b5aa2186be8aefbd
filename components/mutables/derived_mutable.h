#pragma once
// A choice derived from other mutables (MMRazor's DerivedMutable): e.g. the hidden channels
// of an inverted residual = make_divisible(expand_ratio * in_channels, 8). It is computed
// on every read, so it follows its sources; it is never sampled or set itself, and a subnet
// file lists its sources instead.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "components/mutables/mutable_value.h"

namespace razor {

class DerivedMutable {
 public:
  /// The value of `source` itself.
  explicit DerivedMutable(std::shared_ptr<MutableValue> source);

  /// The derived value now.
  double current_choice() const { return fn_(); }
  /// Rounded to the nearest integer (channel counts, kernel sizes).
  int64_t current_int() const;
  /// The mutables this value depends on.
  const std::vector<std::shared_ptr<MutableValue>>& source_mutables() const { return sources_; }

  DerivedMutable operator*(double factor) const;
  /// Product of two derived values (e.g. expand_ratio * channels, both searched).
  DerivedMutable operator*(const DerivedMutable& other) const;
  /// Python's `//` on the value.
  DerivedMutable floordiv(int64_t divisor) const;
  /// make_divisible(value, divisor, min_value) as mmcls rounds channel counts.
  DerivedMutable make_divisible(int64_t divisor, int64_t min_value = 0) const;

 private:
  DerivedMutable(std::function<double()> fn, std::vector<std::shared_ptr<MutableValue>> sources)
      : fn_(std::move(fn)), sources_(std::move(sources)) {}

  std::function<double()> fn_;
  std::vector<std::shared_ptr<MutableValue>> sources_;
};

inline DerivedMutable operator*(const std::shared_ptr<MutableValue>& value, double factor) {
  return DerivedMutable(value) * factor;
}

}  // namespace razor
