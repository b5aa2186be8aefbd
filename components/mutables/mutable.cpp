#include "components/mutables/mutable.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <mutex>

#include "engine/error.h"

namespace razor {

namespace {
uint64_t next_random64(at::Generator& generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}
}  // namespace

int64_t sample_index(at::Generator& generator, int64_t n) {
  RAZOR_ASSERT(n > 0);
  return static_cast<int64_t>(next_random64(generator) % static_cast<uint64_t>(n));
}

double sample_uniform(at::Generator& generator) {
  return static_cast<double>(next_random64(generator) >> 11) * (1.0 / 9007199254740992.0);
}

std::string describe_choices(const std::vector<Choice>& choices) {
  std::string out;
  for (const auto& choice : choices) {
    if (!out.empty()) out += ", ";
    out += choice.dump();
  }
  return out;
}

Choice Mutable::sample_choice(at::Generator& generator) const {
  const auto all = choices();
  return all.at(static_cast<size_t>(sample_index(generator, static_cast<int64_t>(all.size()))));
}

Choice Mutable::min_choice() const {
  RAZOR_CHECK(ordered(), display_name(), ": its choices have no order, so it has no min choice");
  return choices().front();
}

Choice Mutable::max_choice() const {
  RAZOR_CHECK(ordered(), display_name(), ": its choices have no order, so it has no max choice");
  return choices().back();
}

void Mutable::fix_chosen(const Choice& chosen) {
  if (fixed_) {
    RAZOR_CHECK(chosen == current_choice(), display_name(), ": already fixed to ",
                current_choice().dump(), ", cannot fix it to ", chosen.dump());
    return;
  }
  set_current_choice(chosen);
  fixed_ = true;
}

Json Mutable::dump_chosen() const {
  Json all = Json::array();
  for (const auto& choice : choices()) all.push_back(choice);
  return Json{{"chosen", current_choice()}, {"all_choices", all}};
}

std::string Mutable::display_name() const {
  if (!alias_.empty()) return alias_;
  return path().empty() ? name() : path();
}

void Mutable::fail_choice(const Choice& choice) const {
  throw config_error(display_name(), ": ", choice.dump(), " is not one of its choices (",
                     describe_choices(choices()), ")");
}

bool Mutable::accepts(const Choice& choice) const {
  const auto all = choices();
  return std::find(all.begin(), all.end(), choice) != all.end();
}

}  // namespace razor
