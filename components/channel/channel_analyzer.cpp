#include "components/channel/channel_analyzer.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>

#include "components/channel/channel_selection.h"
#include "components/nn/op_description.h"
#include "engine/error.h"

namespace razor::channel {

namespace {

/// Every channel of every value is an element; elements that must be pruned together are
/// joined (union-find). A root carries the reason its channels are frozen, if any.
class Elements {
 public:
  std::vector<int64_t> make(int64_t n, const std::string& frozen = "") {
    std::vector<int64_t> ids(static_cast<size_t>(n));
    for (auto& id : ids) {
      id = static_cast<int64_t>(parent_.size());
      parent_.push_back(id);
      frozen_.push_back(frozen);
    }
    return ids;
  }
  int64_t root(int64_t e) {
    while (parent_[static_cast<size_t>(e)] != e) {
      auto& p = parent_[static_cast<size_t>(e)];
      p = parent_[static_cast<size_t>(p)];
      e = p;
    }
    return e;
  }
  void join(int64_t a, int64_t b) {
    a = root(a);
    b = root(b);
    if (a == b) return;
    if (b < a) std::swap(a, b);  // the older element stays the root: deterministic
    parent_[static_cast<size_t>(b)] = a;
    if (frozen_[static_cast<size_t>(a)].empty())
      frozen_[static_cast<size_t>(a)] = frozen_[static_cast<size_t>(b)];
  }
  void join(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) join(a[i], b[i]);
  }
  void freeze(const std::vector<int64_t>& elements, const std::string& reason) {
    for (int64_t e : elements) {
      auto& why = frozen_[static_cast<size_t>(root(e))];
      if (why.empty()) why = reason;
    }
  }
  const std::string& frozen(int64_t e) { return frozen_[static_cast<size_t>(root(e))]; }

 private:
  std::vector<int64_t> parent_;
  std::vector<std::string> frozen_;
};

using Channels = std::vector<int64_t>;

/// Channel g·n/groups + j is tied to channel j of the first group, for every group g.
void tie_groups(Elements& elements, const Channels& channels, int64_t groups) {
  const auto n = static_cast<int64_t>(channels.size());
  if (groups <= 1 || n % groups != 0) return;
  const int64_t per_group = n / groups;
  for (int64_t g = 1; g < groups; ++g) {
    for (int64_t j = 0; j < per_group; ++j) {
      elements.join(channels[static_cast<size_t>(j)],
                    channels[static_cast<size_t>(g * per_group + j)]);
    }
  }
}

int64_t channel_count(const std::vector<int64_t>& shape) {
  return shape.size() >= 2 ? shape[1] : 0;
}

/// One member's channels on one side, as traced.
struct Side {
  int64_t node;
  bool is_output;
  Channels channels;
};

std::string range_text(int64_t start, int64_t end) {
  return "(" + std::to_string(start) + ", " + std::to_string(end) + ")";
}

/// The channels the op makes from `in`, by its rule; nullopt where the rule does not apply to
/// what it read (then the op is not followed).
std::optional<Channels> follow(Elements& elements, const nn::ChannelRule& rule,
                               std::vector<Channels>& in, const nn::DataflowNode& node) {
  const int64_t out_count = channel_count(node.output_shape);
  if (in.empty()) return std::nullopt;
  switch (rule.flow) {
    case nn::ChannelFlow::kUnknown:
      return std::nullopt;
    case nn::ChannelFlow::kPass:
      if (static_cast<int64_t>(in[0].size()) != out_count) return std::nullopt;
      return in[0];
    case nn::ChannelFlow::kMix: {
      Channels out = elements.make(out_count);
      tie_groups(elements, in[0], rule.groups);
      tie_groups(elements, out, rule.groups);
      return out;
    }
    case nn::ChannelFlow::kBind: {
      // Inputs of one channel broadcast (a gate): they bind nothing.
      size_t widest = 0;
      for (size_t k = 1; k < in.size(); ++k) {
        if (in[k].size() > in[widest].size()) widest = k;
      }
      for (auto& channels : in) {
        if (channels.size() == in[widest].size()) {
          elements.join(in[widest], channels);
        } else if (channels.size() != 1) {
          return std::nullopt;
        }
      }
      if (static_cast<int64_t>(in[widest].size()) != out_count) return std::nullopt;
      return in[widest];
    }
    case nn::ChannelFlow::kConcat: {
      Channels out;
      for (const auto& channels : in) out.insert(out.end(), channels.begin(), channels.end());
      if (static_cast<int64_t>(out.size()) != out_count) return std::nullopt;
      return out;
    }
    case nn::ChannelFlow::kFlatten: {
      const auto& shape = node.input_shapes.at(0);
      const int64_t spatial =
          std::accumulate(shape.begin() + 2, shape.end(), int64_t{1}, std::multiplies<int64_t>());
      Channels out;
      for (int64_t c : in[0]) out.insert(out.end(), static_cast<size_t>(spatial), c);
      if (static_cast<int64_t>(out.size()) != out_count) return std::nullopt;
      return out;
    }
    case nn::ChannelFlow::kSlice:
      if (rule.start < 0 || rule.end > static_cast<int64_t>(in[0].size()) ||
          rule.end - rule.start != out_count) {
        return std::nullopt;
      }
      return Channels(in[0].begin() + rule.start, in[0].begin() + rule.end);
  }
  return std::nullopt;
}

/// One unit being formed: its channels' roots, in order of first appearance.
struct Forming {
  std::vector<int64_t> roots;
};

}  // namespace

ChannelAnalysis find_channel_units(
    const nn::Dataflow& flow, const std::function<std::string(const nn::DataflowNode&)>& names) {
  auto name_of = [&](const nn::DataflowNode& node) { return names ? names(node) : node.path; };
  Elements elements;
  const Channels input = elements.make(channel_count(flow.input_shape), "the model input");
  std::vector<Channels> value(flow.nodes.size());
  std::vector<Side> sides;
  // A member called again (one set of weights) joins the channels of its first call.
  std::unordered_map<const nn::Module*, std::pair<Channels, Channels>> first_call;
  // Ops not followed, by type: where they were called.
  std::map<std::string, std::vector<std::string>> not_followed;

  for (size_t i = 0; i < flow.nodes.size(); ++i) {
    const nn::DataflowNode& node = flow.nodes[i];
    const std::string name = name_of(node);
    std::vector<Channels> in;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const int64_t from = node.inputs[k];
      if (from == nn::kGraphInput) {
        in.push_back(input);
      } else if (from >= 0) {
        in.push_back(value[static_cast<size_t>(from)]);
      } else {
        in.push_back(elements.make(
            channel_count(node.input_shapes.at(k)),
            "input " + std::to_string(k) + " of " + name + " is made by code between modules"));
      }
    }
    const nn::OpDescription* description = node.module->description();
    const nn::ChannelRule rule = description && description->channel
                                     ? description->channel(*node.module, node.input_shapes)
                                     : nn::ChannelRule{};
    std::optional<Channels> out = follow(elements, rule, in, node);
    if (!out) {
      const std::string reason =
          name + " (" + node.type + ") is not followed by the channel analyser";
      for (const auto& channels : in) elements.freeze(channels, reason);
      out = elements.make(channel_count(node.output_shape), reason);
      not_followed[node.type].push_back(name);
    } else if (rule.member) {
      auto seen = first_call.find(node.module);
      if (seen == first_call.end()) {
        first_call.emplace(node.module, std::make_pair(in[0], *out));
        sides.push_back({static_cast<int64_t>(i), /*is_output=*/true, *out});
        sides.push_back({static_cast<int64_t>(i), /*is_output=*/false, in[0]});
      } else {
        elements.join(seen->second.first, in[0]);
        elements.join(seen->second.second, *out);
      }
    }
    value[i] = std::move(*out);
  }
  if (flow.output >= 0) {
    elements.freeze(value[static_cast<size_t>(flow.output)], "the model output");
  }
  // What no op reads goes to code (or is the output when code made the output): frozen.
  for (size_t i = 0; i < flow.nodes.size(); ++i) {
    const auto& node = flow.nodes[i];
    if (node.consumers.empty() && !node.is_output) {
      elements.freeze(value[i],
                      "the output of " + name_of(node) + " is read only by code between modules");
    }
  }

  // Units: the roots found on the same member sides form one unit.
  std::vector<std::vector<int64_t>> roots(sides.size());
  std::map<int64_t, std::vector<int64_t>> sides_of_root;  // root -> side indices (each once)
  std::vector<int64_t> root_order;
  for (size_t s = 0; s < sides.size(); ++s) {
    for (int64_t e : sides[s].channels) {
      const int64_t r = elements.root(e);
      roots[s].push_back(r);
      auto& list = sides_of_root[r];
      if (list.empty()) root_order.push_back(r);
      if (list.empty() || list.back() != static_cast<int64_t>(s))
        list.push_back(static_cast<int64_t>(s));
    }
  }
  std::map<std::vector<int64_t>, size_t> unit_of_signature;
  std::vector<Forming> forming;
  std::vector<std::vector<int64_t>> signatures;
  std::unordered_map<int64_t, size_t> unit_of_root;
  for (int64_t r : root_order) {
    const auto& signature = sides_of_root[r];
    auto it = unit_of_signature.find(signature);
    if (it == unit_of_signature.end()) {
      it = unit_of_signature.emplace(signature, forming.size()).first;
      forming.emplace_back();
      signatures.push_back(signature);
    }
    forming[it->second].roots.push_back(r);
    unit_of_root[r] = it->second;
  }

  ChannelAnalysis analysis;
  for (size_t u = 0; u < forming.size(); ++u) {
    ChannelUnitSpec unit;
    std::vector<int64_t> canonical;
    for (int64_t s : signatures[u]) {
      const Side& side = sides[static_cast<size_t>(s)];
      const auto& side_roots = roots[static_cast<size_t>(s)];
      const auto n = static_cast<int64_t>(side_roots.size());
      for (int64_t p = 0; p < n;) {
        if (unit_of_root.at(side_roots[static_cast<size_t>(p)]) != u) {
          ++p;
          continue;
        }
        // A run ends where the unit's channels end or start over (the next group of a
        // grouped conv); a channel repeated in place is a flattened channel's features.
        std::set<int64_t> in_run;
        int64_t q = p;
        while (q < n) {
          const int64_t r = side_roots[static_cast<size_t>(q)];
          if (unit_of_root.at(r) != u) break;
          if (in_run.count(r) && r != side_roots[static_cast<size_t>(q - 1)]) break;
          in_run.insert(r);
          ++q;
        }
        // The run [p, q): its channels with repeats collapsed, and how often each repeats.
        std::vector<int64_t> collapsed;
        std::vector<int64_t> repeats;
        for (int64_t k = p; k < q; ++k) {
          const int64_t r = side_roots[static_cast<size_t>(k)];
          if (!collapsed.empty() && collapsed.back() == r) {
            ++repeats.back();
          } else {
            collapsed.push_back(r);
            repeats.push_back(1);
          }
        }
        const bool even =
            std::all_of(repeats.begin(), repeats.end(), [&](int64_t v) { return v == repeats[0]; });
        const std::string name = name_of(flow.nodes[static_cast<size_t>(side.node)]);
        if (canonical.empty()) canonical = collapsed;
        if ((collapsed != canonical || !even) && unit.frozen_because.empty()) {
          unit.frozen_because =
              "its channels are in another order in " + name + " " + range_text(p, q);
        }
        UnitChannel channel;
        channel.name = name;
        channel.module = flow.nodes[static_cast<size_t>(side.node)].module;
        channel.start = p;
        channel.end = q;
        channel.expand_ratio = repeats[0];
        channel.is_output = side.is_output;
        (side.is_output ? unit.output_related : unit.input_related).push_back(channel);
        p = q;
      }
    }
    unit.num_channels = static_cast<int64_t>(canonical.size());
    const UnitChannel& first =
        unit.output_related.empty() ? unit.input_related.front() : unit.output_related.front();
    unit.name = first.name + "_" + range_text(first.start, first.end) + "_" +
                std::to_string(unit.num_channels);
    for (int64_t r : forming[u].roots) {
      if (!unit.frozen_because.empty()) break;
      unit.frozen_because = elements.frozen(r);
    }
    if (unit.frozen_because.empty() && unit.output_related.empty()) {
      unit.frozen_because = "no op with weights makes its channels";
    }
    if (unit.frozen_because.empty() && unit.input_related.empty()) {
      unit.frozen_because = "no op with weights reads its channels";
    }
    (unit.frozen_because.empty() ? analysis.units : analysis.frozen).push_back(std::move(unit));
  }
  for (const auto& [type, where] : not_followed) {
    std::string line =
        type + " is not followed by the channel analyser; the channels through it are frozen (" +
        std::to_string(where.size()) + (where.size() == 1 ? " call: " : " calls: ") + where[0];
    if (where.size() > 1) line += ", ...";
    analysis.warnings.push_back(line + ")");
  }
  return analysis;
}

ChannelAnalyzer::ChannelAnalyzer(ChannelAnalyzerOptions options) : options_(std::move(options)) {
  const auto& shape = options_.demo_input;
  bool ok = shape.size() == 4;
  for (int64_t v : shape) ok = ok && v > 0;
  RAZOR_CHECK(ok, "ChannelAnalyzer: demo_input must be 4 positive integers N C H W");
  RAZOR_CHECK(options_.tracer_type == "BackwardTracer" || options_.tracer_type == "FxTracer",
              "ChannelAnalyzer: tracer_type must be \"BackwardTracer\" or \"FxTracer\", got \"",
              options_.tracer_type, "\"");
}

ChannelAnalyzerOptions ChannelAnalyzer::options_from(const Json& table, const std::string& where) {
  ChannelAnalyzerOptions options;
  for (const auto& [key, v] : table.items()) {
    if (key == "type") {
      RAZOR_CHECK(v == "ChannelAnalyzer", where,
                  ".type: only \"ChannelAnalyzer\" parses channel units, got ", v.dump());
    } else if (key == "demo_input") {
      // MMRazor takes the shape itself or a DemoInput table with `input_shape`.
      const Json& shape = v.is_object() && v.contains("input_shape") ? v["input_shape"] : v;
      RAZOR_CHECK(shape.is_array(), where,
                  ".demo_input: expected [N, C, H, W] or { input_shape = [...] }, got ", v.dump());
      options.demo_input.clear();
      for (const auto& s : shape) {
        RAZOR_CHECK(s.is_number_integer() && s.get<int64_t>() > 0, where,
                    ".demo_input: expected 4 positive integers, got ", shape.dump());
        options.demo_input.push_back(s.get<int64_t>());
      }
      RAZOR_CHECK(options.demo_input.size() == 4, where,
                  ".demo_input: expected 4 integers N C H W, got ", shape.dump());
    } else if (key == "tracer_type") {
      RAZOR_CHECK(v.is_string(), where, ".tracer_type: expected a string, got ", v.dump());
      options.tracer_type = v.get<std::string>();
      RAZOR_CHECK(options.tracer_type == "BackwardTracer" || options.tracer_type == "FxTracer",
                  where, ".tracer_type: expected \"BackwardTracer\" or \"FxTracer\", got \"",
                  options.tracer_type, "\"");
    } else {
      RAZOR_CHECK(false, where, ": unknown key \"", key,
                  "\" (ChannelAnalyzer takes type, demo_input, tracer_type)");
    }
  }
  return options;
}

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

/// Each unit at a random narrower width (the others at full width): the forward must run
/// and give the output's shape. What the graph could not see (code between modules reading
/// a value the unit narrows) fails here, and freezes the unit.
void check_by_forward(ChannelAnalysis& analysis, const torch::Tensor& demo,
                      const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  torch::NoGradGuard no_grad;
  const auto expected = forward(demo).sizes().vec();
  // First every unit at once, at the widths the one-by-one check below draws: one forward
  // for a model whose units all pass (a big model has dozens); only if it fails, each alone.
  {
    std::mt19937_64 rng(0);
    std::vector<ChannelUnitSpec> checked;
    std::vector<int64_t> widths;
    for (const auto& unit : analysis.units) {
      if (unit.num_channels < 2) continue;
      widths.push_back(std::uniform_int_distribution<int64_t>(1, unit.num_channels - 1)(rng));
      checked.push_back(unit);
    }
    bool passed = false;
    std::optional<ChannelSelection> selection;
    try {
      selection.emplace(checked);
      for (size_t i = 0; i < widths.size(); ++i) selection->keep_first(i, widths[i]);
      selection->apply();
      passed = forward(demo).sizes().vec() == expected;
    } catch (const std::exception&) {
      passed = false;
    }
    if (selection) selection->clear();
    if (passed) return;
  }
  std::mt19937_64 rng(0);
  std::vector<ChannelUnitSpec> prunable;
  for (auto& unit : analysis.units) {
    if (unit.num_channels < 2) {
      prunable.push_back(std::move(unit));
      continue;
    }
    const int64_t width = std::uniform_int_distribution<int64_t>(1, unit.num_channels - 1)(rng);
    std::string failure;
    std::optional<ChannelSelection> selection;
    try {
      selection.emplace(std::vector<ChannelUnitSpec>{unit});
      selection->keep_first(0, width);
      selection->apply();
      const auto shape = forward(demo).sizes().vec();
      if (shape != expected) {
        failure = "the model's output changes shape from " + c10::str(c10::IntArrayRef(expected)) + " to " +
                  c10::str(c10::IntArrayRef(shape));
      }
    } catch (const std::exception& e) {
      failure = first_line(e.what());
    }
    if (selection) selection->clear();
    if (failure.empty()) {
      prunable.push_back(std::move(unit));
    } else {
      unit.frozen_because = "a forward with " + std::to_string(width) + " of its " +
                            std::to_string(unit.num_channels) + " channels fails: " + failure;
      analysis.frozen.push_back(std::move(unit));
    }
  }
  analysis.units = std::move(prunable);
}

}  // namespace

ChannelAnalysis ChannelAnalyzer::analyze(
    torch::nn::Module& root,
    const std::function<torch::Tensor(const torch::Tensor&)>& forward) const {
  std::unordered_map<const torch::nn::Module*, std::string> names;
  for (const auto& item : root.named_modules("", /*include_self=*/false))
    names[item.value().get()] = item.key();

  const bool was_training = root.is_training();
  root.eval();
  // The demo input from a generator of its own: analysing a model (when an algorithm is
  // built, or a pruned copy cut during training) leaves the run's random stream as it was.
  at::Generator generator = at::detail::createCPUGenerator(0);
  torch::Tensor demo = torch::randn(options_.demo_input, generator);
  for (const auto& p : root.parameters()) {
    demo = demo.to(p.options());
    break;
  }
  // Eval mode (batch statistics would mix a batch of one), restored however this ends.
  struct RestoreMode {
    torch::nn::Module& root;
    bool training;
    ~RestoreMode() { root.train(training); }
  } restore{root, was_training};
  const nn::Dataflow flow = nn::trace_dataflow(root, demo, forward);
  ChannelAnalysis analysis = find_channel_units(flow, [&](const nn::DataflowNode& node) {
    auto it = names.find(node.module);
    return it == names.end() ? node.path : it->second;
  });
  check_by_forward(analysis, demo, forward);
  if (analysis.units.empty()) {
    std::string why = "the model has no prunable channel units";
    if (!analysis.frozen.empty()) {
      why += ": " + std::to_string(analysis.frozen.size()) + " units are frozen, the first (" +
             analysis.frozen.front().name + ") because " + analysis.frozen.front().frozen_because;
    } else {
      why += ": it has no conv, linear or norm that the traced forward calls";
    }
    RAZOR_CHECK(false, "ChannelAnalyzer: ", why);
  }
  return analysis;
}

namespace {

Json channel_json(const UnitChannel& channel) {
  Json j = Json::object();
  j["name"] = channel.name;
  j["start"] = channel.start;
  j["end"] = channel.end;
  j["expand_ratio"] = channel.expand_ratio;
  j["is_output_channel"] = channel.is_output;
  return j;
}

}  // namespace

Json units_config(const ChannelAnalysis& analysis, bool with_channels, bool with_init_args) {
  Json config = Json::object();
  for (const auto& unit : analysis.units) {
    Json entry = Json::object();
    if (with_init_args) {
      entry["init_args"] = {{"num_channels", unit.num_channels},
                            {"choice_mode", "ratio"},
                            {"divisor", 1},
                            {"min_value", 1},
                            {"min_ratio", 0.9}};
    }
    if (with_channels) {
      Json input = Json::array(), output = Json::array();
      for (const auto& c : unit.input_related) input.push_back(channel_json(c));
      for (const auto& c : unit.output_related) output.push_back(channel_json(c));
      entry["channels"] = {{"input_related", input}, {"output_related", output}};
    }
    entry["choice"] = 1.0;
    config[unit.name] = entry;
  }
  return config;
}

Json choice_template(const ChannelAnalysis& analysis) {
  Json config = Json::object();
  for (const auto& unit : analysis.units) config[unit.name] = 1.0;
  return config;
}

}  // namespace razor::channel
