#include "components/mutables/derived_mutable.h"

#include <cmath>

#include "components/architectures/make_divisible.h"
#include "engine/error.h"

namespace razor {

DerivedMutable::DerivedMutable(std::shared_ptr<MutableValue> source)
    : sources_({source}) {
  RAZOR_ASSERT(source != nullptr);
  MutableValue* raw = source.get();
  fn_ = [raw] { return raw->value(); };
}

int64_t DerivedMutable::current_int() const {
  return static_cast<int64_t>(std::llround(current_choice()));
}

DerivedMutable DerivedMutable::operator*(double factor) const {
  auto fn = fn_;
  return DerivedMutable([fn, factor] { return fn() * factor; }, sources_);
}

DerivedMutable DerivedMutable::operator*(const DerivedMutable& other) const {
  auto a = fn_;
  auto b = other.fn_;
  auto sources = sources_;
  for (const auto& s : other.sources_) {
    bool seen = false;
    for (const auto& t : sources) seen = seen || t == s;
    if (!seen) sources.push_back(s);
  }
  return DerivedMutable([a, b] { return a() * b(); }, sources);
}

DerivedMutable DerivedMutable::floordiv(int64_t divisor) const {
  RAZOR_CHECK(divisor != 0, "DerivedMutable: division by zero");
  auto fn = fn_;
  return DerivedMutable(
      [fn, divisor] { return std::floor(fn() / static_cast<double>(divisor)); }, sources_);
}

DerivedMutable DerivedMutable::make_divisible(int64_t divisor, int64_t min_value) const {
  RAZOR_CHECK(divisor > 0, "DerivedMutable: make_divisible needs a positive divisor");
  auto fn = fn_;
  return DerivedMutable(
      [fn, divisor, min_value] {
        return static_cast<double>(razor::make_divisible(fn(), divisor, min_value));
      },
      sources_);
}

}  // namespace razor
