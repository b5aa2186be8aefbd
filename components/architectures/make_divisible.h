#pragma once
// mmcls's make_divisible: the channel count nearest to `value` that is a multiple of
// `divisor`, at least `min_value` (default: divisor), and never below 90% of `value`.
#include <algorithm>
#include <cstdint>

namespace razor {

inline int64_t make_divisible(double value, int64_t divisor, int64_t min_value = 0,
                              double min_ratio = 0.9) {
  if (min_value <= 0) min_value = divisor;
  int64_t rounded = static_cast<int64_t>(value + divisor / 2.0) / divisor * divisor;
  int64_t out = std::max(min_value, rounded);
  if (static_cast<double>(out) < min_ratio * value) out += divisor;
  return out;
}

}  // namespace razor
