#include "components/channel/mutable_channel_unit.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "components/channel/dcff_channel_unit.h"
#include "components/channel/group_fisher_channel_unit.h"
#include "components/nn/batch_norm.h"
#include "components/nn/weighted_op.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor::channel {

int64_t make_divisible(double value, int64_t divisor, int64_t min_value, double min_ratio) {
  const auto rounded = static_cast<int64_t>(value + static_cast<double>(divisor) / 2.0) / divisor * divisor;
  int64_t v = std::max(min_value, rounded);
  // Rounding down must not lose more than (1 - min_ratio) of the value.
  if (static_cast<double>(v) < min_ratio * value) v += divisor;
  return v;
}

MutableChannelUnitOptions MutableChannelUnitOptions::from(const Json& args, const std::string& where,
                                                          int64_t num_channels, const std::string& unit_type) {
  MutableChannelUnitOptions o;
  // MMRazor's defaults: OneShot (candidates [0.5, 1.0]) and DCFF units choose by ratio; DMCP
  // units round widths down to half (min_ratio 0.5).
  if (unit_type == "OneShotMutableChannelUnit" || unit_type == "DCFFChannelUnit") o.choice_mode = "ratio";
  if (unit_type == "DMCPChannelUnit") o.min_ratio = 0.5;
  RAZOR_CHECK(args.is_object(), where, ": expected a table of unit arguments, got ", args.dump());
  for (const auto& [key, v] : args.items()) {
    if (key == "choice_mode") {
      RAZOR_CHECK(v.is_string() && (v == "ratio" || v == "number"), where,
                  ".choice_mode: expected \"ratio\" or \"number\", got ", v.dump());
      o.choice_mode = v.get<std::string>();
    } else if (key == "divisor" || key == "min_value") {
      RAZOR_CHECK(v.is_number_integer() && v.get<int64_t>() >= 1, where, ".", key,
                  ": expected a positive integer, got ", v.dump());
      (key == "divisor" ? o.divisor : o.min_value) = v.get<int64_t>();
    } else if (key == "min_ratio") {
      RAZOR_CHECK(v.is_number() && v.get<double>() > 0 && v.get<double>() <= 1, where,
                  ".min_ratio: expected a number in (0, 1], got ", v.dump());
      o.min_ratio = v.get<double>();
    } else if (key == "normalization_type") {
      RAZOR_CHECK(v.is_string() && (v == "flops" || v == "act" || v == "none"), where,
                  ".normalization_type: expected \"flops\", \"act\" or \"none\", got ", v.dump());
      o.normalization_type = v.get<std::string>();
    } else if (key == "mutate_linear") {
      RAZOR_CHECK(v.is_boolean(), where, ".mutate_linear: expected true or false, got ", v.dump());
      o.mutate_linear = v.get<bool>();
    } else if (key == "candidate_choices") {
      RAZOR_CHECK(v.is_array() && !v.empty(), where, ".candidate_choices: expected a list of widths, got ", v.dump());
      for (const auto& c : v) {
        RAZOR_CHECK(c.is_number(), where, ".candidate_choices: expected numbers, got ", c.dump());
      }
      o.candidate_choices = v;
    } else if (key == "num_channels") {
      RAZOR_CHECK(v.is_number_integer() && v.get<int64_t>() == num_channels, where, ".num_channels: the model's unit has ",
                  num_channels, " channels, the config says ", v.dump());
    } else {
      RAZOR_CHECK(false, where, ": unknown key \"", key,
                  "\" (a unit takes choice_mode, divisor, min_value, min_ratio, num_channels; a GroupFisher "
                  "unit also normalization_type, mutate_linear; OneShot and Slimmable units candidate_choices)");
    }
  }
  return o;
}

SequentialMutableChannelUnit::SequentialMutableChannelUnit(ChannelUnitSpec spec, MutableChannelUnitOptions options)
    : spec_(std::move(spec)), options_(std::move(options)) {
  choice_ = max_choice();
  width_ = spec_.num_channels;
}

Json SequentialMutableChannelUnit::max_choice() const { return choice_of_width(spec_.num_channels); }

Json SequentialMutableChannelUnit::min_choice() const { return choice_of_width(1); }

Json SequentialMutableChannelUnit::sample_choice(at::Generator& generator) const {
  return choice_of_width(torch::randint(1, spec_.num_channels + 1, {1}, generator, torch::kLong).item<int64_t>());
}

Json SequentialMutableChannelUnit::choice_of_width(int64_t width) const {
  if (options_.choice_mode != "ratio") return Json(width);
  return width == spec_.num_channels ? Json(1.0)
                                     : Json(static_cast<double>(width) / static_cast<double>(spec_.num_channels));
}

int64_t SequentialMutableChannelUnit::width_of(const Json& choice) const {
  const int64_t c = spec_.num_channels;
  int64_t width = 0;
  if (options_.choice_mode == "ratio") {
    RAZOR_CHECK(choice.is_number_float(), name(), ": in ratio mode a choice is a ratio in (0, 1], got ", choice.dump(),
                choice.is_number_integer() ? " (an integer: write it as a ratio, or set choice_mode = \"number\")" : "");
    const double ratio = choice.get<double>();
    RAZOR_CHECK(ratio > 0 && ratio <= 1, name(), ": a ratio must be in (0, 1], got ", choice.dump());
    width = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(c) * ratio));
  } else {
    RAZOR_CHECK(choice.is_number_integer(), name(), ": in number mode a choice is a channel count in [1, ", c,
                "], got ", choice.dump());
    width = choice.get<int64_t>();
    RAZOR_CHECK(width >= 1 && width <= c, name(), ": a channel count must be in [1, ", c, "], got ", width);
  }
  if (options_.divisor > 1) {
    width = make_divisible(static_cast<double>(width), options_.divisor, options_.min_value, options_.min_ratio);
  }
  return std::min(width, c);
}

void SequentialMutableChannelUnit::set_choice(const Json& choice) {
  width_ = width_of(choice);
  choice_ = choice;
}

void SequentialMutableChannelUnit::set_width(int64_t width) {
  RAZOR_CHECK(width >= 1 && width <= spec_.num_channels, name(), ": a width must be in [1, ", spec_.num_channels,
              "], got ", width);
  width_ = width;
  choice_ = choice_of_width(width);
}

torch::Tensor SequentialMutableChannelUnit::mask() const {
  torch::Tensor mask = torch::zeros({spec_.num_channels}, torch::kBool);
  mask.narrow(0, 0, width_).fill_(true);
  return mask;
}

Json SequentialMutableChannelUnit::init_args() const {
  return {{"num_channels", spec_.num_channels},
          {"choice_mode", options_.choice_mode},
          {"divisor", options_.divisor},
          {"min_value", options_.min_value},
          {"min_ratio", options_.min_ratio}};
}

torch::Tensor ImportanceChannelUnit::mean_over_filters(const FilterScore& score, const char* what) const {
  torch::NoGradGuard no_grad;
  torch::Tensor sum;
  int64_t count = 0;
  for (const auto& c : spec().output_related) {
    auto* op = dynamic_cast<nn::WeightedOp*>(c.module);
    if (!op) continue;  // norms make no filter importance
    auto rows = [&](const torch::Tensor& t) {
      return t.defined() ? t.detach().flatten(1).narrow(0, c.start, c.end - c.start).to(torch::kFloat).cpu() : t;
    };
    const torch::Tensor s = score(rows(op->weight), rows(op->weight.grad()));
    RAZOR_CHECK(s.defined(), name(), ": ", c.module->path(), " has no gradient for the ", what, " importance: run a "
                "backward pass before choosing the channels (ItePruneAlgorithm runs one on the step's batch)");
    sum = sum.defined() ? sum + s : s;
    ++count;
  }
  RAZOR_CHECK(count > 0, name(), ": no conv or linear makes this unit's channels, so it has no ", what, " importance");
  return sum / static_cast<double>(count);
}

torch::Tensor ImportanceChannelUnit::mask() const {
  // At full width every channel is kept, whatever the scores (none from gradients yet).
  if (width() == num_channels()) return torch::ones({num_channels()}, torch::kBool);
  const torch::Tensor score = importance();
  // The largest scores; a stable sort keeps the lower index first among equals.
  const torch::Tensor order = std::get<1>(score.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  torch::Tensor mask = torch::zeros({num_channels()}, torch::kBool);
  mask.index_fill_(0, order.narrow(0, 0, width()), true);
  return mask;
}

torch::Tensor L1MutableChannelUnit::importance() const {
  return mean_over_filters([](const torch::Tensor& w, const torch::Tensor&) { return w.abs().mean(1); }, "L1");
}

torch::Tensor L2MutableChannelUnit::importance() const {
  return mean_over_filters([](const torch::Tensor& w, const torch::Tensor&) { return w.norm(2, 1); }, "L2");
}

torch::Tensor FPGMMutableChannelUnit::importance() const {
  return mean_over_filters([](const torch::Tensor& w, const torch::Tensor&) { return torch::cdist(w, w).sum(1); },
                           "FPGM");
}

torch::Tensor TaylorMutableChannelUnit::importance() const {
  return mean_over_filters(
      [](const torch::Tensor& w, const torch::Tensor& g) { return g.defined() ? (w * g).sum(1).square() : g; },
      "Taylor");
}

torch::Tensor BNScaleMutableChannelUnit::importance() const {
  torch::NoGradGuard no_grad;
  torch::Tensor sum;
  int64_t count = 0;
  for (const auto& c : spec().output_related) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(c.module);
    if (!bn || !bn->weight.defined()) continue;
    const torch::Tensor scale = bn->weight.detach().narrow(0, c.start, c.end - c.start).abs().to(torch::kFloat).cpu();
    sum = sum.defined() ? sum + scale : scale;
    ++count;
  }
  RAZOR_CHECK(count > 0, name(), ": no affine BatchNorm normalises this unit's channels, so it has no BN-scale importance");
  return sum / static_cast<double>(count);
}

OneShotMutableChannelUnit::OneShotMutableChannelUnit(ChannelUnitSpec spec, MutableChannelUnitOptions options)
    : SequentialMutableChannelUnit(std::move(spec), std::move(options)) {
  const MutableChannelUnitOptions& o = this->options();
  const bool ratio = o.choice_mode == "ratio";
  Json given = o.candidate_choices;
  if (given.is_null()) {
    RAZOR_CHECK(ratio, name(), ": a ", type(), " in number mode needs candidate_choices (channel counts)");
    given = Json::array({0.5, 1.0});
  }
  const auto c = static_cast<double>(num_channels());
  std::vector<std::pair<int64_t, double>> sorted;
  for (const auto& choice : given) {
    if (ratio) {
      RAZOR_CHECK(choice.is_number_float() && choice.get<double>() > 0 && choice.get<double>() <= 1, name(),
                  ": in ratio mode a candidate is a ratio in (0, 1], got ", choice.dump());
    } else {
      RAZOR_CHECK(choice.is_number_integer() && choice.get<int64_t>() >= 1 && choice.get<int64_t>() <= num_channels(),
                  name(), ": in number mode a candidate is a channel count in [1, ", num_channels(), "], got ",
                  choice.dump());
    }
    // As MMRazor's: every candidate made divisible (rounded to the nearest multiple), then sorted.
    const double value = ratio ? choice.get<double>() * c : choice.get<double>();
    sorted.emplace_back(std::min(num_channels(), make_divisible(value, o.divisor, o.min_value, o.min_ratio)),
                        choice.get<double>());
  }
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [width, given_value] : sorted) {
    widths_.push_back(width);
    given_.push_back(given_value);
    candidates_.push_back(choice_of_width(width));
  }
  set_width(widths_.back());
}

Json OneShotMutableChannelUnit::max_choice() const { return candidates_.back(); }

Json OneShotMutableChannelUnit::min_choice() const { return candidates_.front(); }

Json OneShotMutableChannelUnit::sample_choice(at::Generator& generator) const {
  const auto n = static_cast<int64_t>(candidates_.size());
  return candidates_[static_cast<size_t>(torch::randint(n, {1}, generator, torch::kLong).item<int64_t>())];
}

void OneShotMutableChannelUnit::set_choice(const Json& choice) {
  // A candidate as the config gave it, as it was made divisible, or any choice of its width.
  const int64_t width = width_of(choice);
  const double value = choice.get<double>();
  for (size_t i = 0; i < widths_.size(); ++i) {
    if (widths_[i] == width || std::abs(value - given_[i]) < 1e-9 ||
        std::abs(value - candidates_[i].get<double>()) < 1e-9) {
      set_width(widths_[i]);
      return;
    }
  }
  std::vector<std::string> listed;
  for (const auto& c : candidates_) listed.push_back(c.dump());
  throw config_error(name(), ": ", choice.dump(), " is not one of the unit's candidate_choices [", join(listed, ", "),
                     "]");
}

Json OneShotMutableChannelUnit::init_args() const {
  Json args = SequentialMutableChannelUnit::init_args();
  args["candidate_choices"] = candidates_;
  return args;
}

void SlimmableChannelUnit::prepare_for_pruning() {
  std::vector<int64_t> narrower;
  for (const int64_t w : candidate_widths()) {
    if (w < num_channels() && (narrower.empty() || narrower.back() != w)) narrower.push_back(w);
  }
  for (const auto& c : spec().output_related) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(c.module);
    if (!bn) continue;
    RAZOR_CHECK(c.start == 0 && c.end == bn->num_features(), name(), ": ", c.name, " normalises channels [", c.start,
                ", ", c.end, ") of its ", bn->num_features(), " for this unit; a slimmable unit needs BatchNorms "
                "of its own channels alone");
    bn->set_candidate_widths(narrower);
  }
}

namespace {

template <class Unit>
std::unique_ptr<SequentialMutableChannelUnit> make(ChannelUnitSpec spec, MutableChannelUnitOptions options) {
  return std::make_unique<Unit>(std::move(spec), std::move(options));
}

}  // namespace

std::unique_ptr<SequentialMutableChannelUnit> make_unit(const std::string& type, ChannelUnitSpec spec,
                                                        MutableChannelUnitOptions options, const std::string& where) {
  using Factory = std::unique_ptr<SequentialMutableChannelUnit> (*)(ChannelUnitSpec, MutableChannelUnitOptions);
  static const std::vector<std::pair<std::string, Factory>> kUnits = {
      {"SequentialMutableChannelUnit", &make<SequentialMutableChannelUnit>},
      {"L1MutableChannelUnit", &make<L1MutableChannelUnit>},
      {"L2MutableChannelUnit", &make<L2MutableChannelUnit>},
      {"FPGMMutableChannelUnit", &make<FPGMMutableChannelUnit>},
      {"BNScaleMutableChannelUnit", &make<BNScaleMutableChannelUnit>},
      {"TaylorMutableChannelUnit", &make<TaylorMutableChannelUnit>},
      {"OneShotMutableChannelUnit", &make<OneShotMutableChannelUnit>},
      {"SlimmableChannelUnit", &make<SlimmableChannelUnit>},
      {"GroupFisherChannelUnit", &make<GroupFisherChannelUnit>},
      {"DCFFChannelUnit", &make<DCFFChannelUnit>},
      {"DMCPChannelUnit", &make<DMCPChannelUnit>},
  };
  std::vector<std::string> known;
  for (const auto& [name, factory] : kUnits) {
    if (name == type) return factory(std::move(spec), std::move(options));
    known.push_back(name);
  }
  throw config_error(where, ": unknown channel unit type \"", type, "\" (known: ", join(known, ", "), ")");
}

}  // namespace razor::channel
