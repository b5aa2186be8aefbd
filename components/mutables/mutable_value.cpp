#include "components/mutables/mutable_value.h"

#include <algorithm>

#include "engine/error.h"

namespace razor {

MutableValue::MutableValue(const std::string& type_name, std::vector<Choice> value_list,
                           bool default_max, std::string alias)
    : Mutable(type_name, std::move(alias)), values_(std::move(value_list)) {
  RAZOR_CHECK(!values_.empty(), type_name, ": value_list must not be empty");
  for (const auto& v : values_) numeric_ = numeric_ && v.is_number();
  for (size_t i = 0; i < values_.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      RAZOR_CHECK(values_[i] != values_[j], type_name, ": value_list has ", values_[i].dump(),
                  " twice");
    }
  }
  if (default_max) {
    RAZOR_CHECK(numeric_, type_name, ": value_list must hold numbers, got ",
                describe_choices(values_));
    std::sort(values_.begin(), values_.end(),
              [](const Choice& a, const Choice& b) { return a.get<double>() < b.get<double>(); });
    current_ = values_.back();
  } else {
    current_ = values_.front();
  }
}

const Choice* MutableValue::find(const Choice& choice) const {
  for (const auto& v : values_) {
    if (v == choice || (v.is_number() && choice.is_number() && v.get<double>() == choice.get<double>())) {
      return &v;
    }
  }
  return nullptr;
}

void MutableValue::set_current_choice(const Choice& choice) {
  const Choice* v = find(choice);
  if (!v) fail_choice(choice);
  RAZOR_CHECK(!fixed_ || *v == current_, display_name(), ": fixed to ", current_.dump(),
              ", cannot choose ", choice.dump());
  current_ = *v;
}

Choice MutableValue::min_choice() const {
  RAZOR_CHECK(numeric_, display_name(), ": its values are not numbers, so it has no min choice");
  return *std::min_element(values_.begin(), values_.end(), [](const Choice& a, const Choice& b) {
    return a.get<double>() < b.get<double>();
  });
}

Choice MutableValue::max_choice() const {
  RAZOR_CHECK(numeric_, display_name(), ": its values are not numbers, so it has no max choice");
  return *std::max_element(values_.begin(), values_.end(), [](const Choice& a, const Choice& b) {
    return a.get<double>() < b.get<double>();
  });
}

double MutableValue::value() const {
  RAZOR_CHECK(current_.is_number(), display_name(), ": the value ", current_.dump(),
              " is not a number");
  return current_.get<double>();
}

torch::Tensor MutableValue::forward(const torch::Tensor&) {
  throw std::logic_error(display_name() + ": a value mutable is read, not called");
}

}  // namespace razor
