#include "components/channel/mutable_channel_unit.h"

#include <torch/torch.h>

#include <algorithm>
#include <vector>

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
                                                          int64_t num_channels) {
  MutableChannelUnitOptions o;
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
    } else if (key == "num_channels") {
      RAZOR_CHECK(v.is_number_integer() && v.get<int64_t>() == num_channels, where, ".num_channels: the model's unit has ",
                  num_channels, " channels, the config says ", v.dump());
    } else {
      RAZOR_CHECK(false, where, ": unknown key \"", key,
                  "\" (a unit takes choice_mode, divisor, min_value, min_ratio, num_channels; a GroupFisher "
                  "unit also normalization_type, mutate_linear)");
    }
  }
  return o;
}

SequentialMutableChannelUnit::SequentialMutableChannelUnit(ChannelUnitSpec spec, MutableChannelUnitOptions options)
    : spec_(std::move(spec)), options_(std::move(options)) {
  choice_ = max_choice();
  width_ = spec_.num_channels;
}

Json SequentialMutableChannelUnit::max_choice() const {
  return options_.choice_mode == "ratio" ? Json(1.0) : Json(spec_.num_channels);
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
  choice_ = options_.choice_mode == "ratio"
                ? Json(static_cast<double>(width) / static_cast<double>(spec_.num_channels))
                : Json(width);
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

torch::Tensor ImportanceChannelUnit::mean_over_filters(const std::function<torch::Tensor(const torch::Tensor&)>& score,
                                                     const char* what) const {
  torch::NoGradGuard no_grad;
  torch::Tensor sum;
  int64_t count = 0;
  for (const auto& c : spec().output_related) {
    auto* op = dynamic_cast<nn::WeightedOp*>(c.module);
    if (!op) continue;  // norms make no filter importance
    const torch::Tensor filters =
        op->weight.detach().flatten(1).narrow(0, c.start, c.end - c.start).to(torch::kFloat).cpu();
    const torch::Tensor s = score(filters);
    sum = sum.defined() ? sum + s : s;
    ++count;
  }
  RAZOR_CHECK(count > 0, name(), ": no conv or linear makes this unit's channels, so it has no ", what, " importance");
  return sum / static_cast<double>(count);
}

torch::Tensor ImportanceChannelUnit::mask() const {
  const torch::Tensor score = importance();
  // The largest scores; a stable sort keeps the lower index first among equals.
  const torch::Tensor order = std::get<1>(score.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  torch::Tensor mask = torch::zeros({num_channels()}, torch::kBool);
  mask.index_fill_(0, order.narrow(0, 0, width()), true);
  return mask;
}

torch::Tensor L1MutableChannelUnit::importance() const {
  return mean_over_filters([](const torch::Tensor& w) { return w.abs().mean(1); }, "L1");
}

torch::Tensor L2MutableChannelUnit::importance() const {
  return mean_over_filters([](const torch::Tensor& w) { return w.norm(2, 1); }, "L2");
}

torch::Tensor FPGMMutableChannelUnit::importance() const {
  return mean_over_filters([](const torch::Tensor& w) { return torch::cdist(w, w).sum(1); }, "FPGM");
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
      {"GroupFisherChannelUnit", &make<GroupFisherChannelUnit>},
  };
  std::vector<std::string> known;
  for (const auto& [name, factory] : kUnits) {
    if (name == type) return factory(std::move(spec), std::move(options));
    known.push_back(name);
  }
  throw config_error(where, ": unknown channel unit type \"", type, "\" (known: ", join(known, ", "), ")");
}

}  // namespace razor::channel
