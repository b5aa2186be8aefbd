// Channel units as MMRazor's ChannelAnalyzer forms them, checked against unit lists written
// here from the rules (a plain conv separates its input and output units, a depthwise conv
// passes its unit through, a grouped conv ties its groups' slices, BN shares its input's
// unit, an add binds, a concat gives each producer its slice, flatten -> linear expands each
// channel): ResNet-20, ResNet-50, MobileNetV2, and small nets for each rule.
#include "components/channel/channel_analyzer.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "components/nn/channel_ops.h"
#include "components/nn/nn.h"
#include "tests/components/architectures/build.h"
#include "tests/components/channel/nets.h"

using namespace razor;
using channel::ChannelAnalysis;
using channel::ChannelAnalyzer;
using channel::ChannelUnitSpec;
using Net = test::OpNet;

namespace {

/// A unit as the test writes it: its width and the members on each side by name.
struct Unit {
  int64_t channels = 0;
  std::set<std::string> out, in;
  bool operator==(const Unit& o) const {
    return channels == o.channels && out == o.out && in == o.in;
  }
};

std::ostream& operator<<(std::ostream& os, const Unit& u) {
  os << u.channels << " out{";
  for (const auto& n : u.out) os << n << " ";
  os << "} in{";
  for (const auto& n : u.in) os << n << " ";
  return os << "}";
}

/// The found units by name, members by name only; every member must cover the unit's width
/// once, from channel 0 (true for nets without concat, groups or flatten expansion).
std::map<std::string, Unit> whole_units(const ChannelAnalysis& analysis) {
  std::map<std::string, Unit> units;
  for (const auto& u : analysis.units) {
    Unit unit{u.num_channels, {}, {}};
    for (const auto* side : {&u.output_related, &u.input_related}) {
      for (const auto& c : *side) {
        CHECK(c.start == 0);
        CHECK(c.end == u.num_channels);
        CHECK(c.expand_ratio == 1);
        (c.is_output ? unit.out : unit.in).insert(c.name);
      }
    }
    CHECK(units.count(u.name) == 0);
    units[u.name] = unit;
  }
  return units;
}

/// "name[start, end)" or "name[start, end)x4" for each member, per side.
std::pair<std::vector<std::string>, std::vector<std::string>> members(const ChannelUnitSpec& u) {
  std::pair<std::vector<std::string>, std::vector<std::string>> sides;
  for (const auto& c : u.output_related) {
    sides.first.push_back(c.name + "[" + std::to_string(c.start) + "," + std::to_string(c.end) +
                          ")" + (c.expand_ratio > 1 ? "x" + std::to_string(c.expand_ratio) : ""));
  }
  for (const auto& c : u.input_related) {
    sides.second.push_back(c.name + "[" + std::to_string(c.start) + "," + std::to_string(c.end) +
                           ")" + (c.expand_ratio > 1 ? "x" + std::to_string(c.expand_ratio) : ""));
  }
  return sides;
}

std::string unit_name(const std::string& first, int64_t width) {
  return first + "_(0, " + std::to_string(width) + ")_" + std::to_string(width);
}

}  // namespace

TEST_CASE("ResNet-20's channel units: one per block inside, one per stage on the residual path",
          "[channel]") {
  torch::manual_seed(0);
  auto model = std::dynamic_pointer_cast<Model>(test::build_model(
      test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)));
  REQUIRE(model);
  const auto analysis = test::analyze_units(
      *model, {1, 1, 28, 28}, [&](const torch::Tensor& x) { return model->forward_tensor(x); });

  std::map<std::string, Unit> want;
  const std::vector<int64_t> widths = {16, 32, 64};
  for (int s = 1; s <= 3; ++s) {
    for (int b = 0; b < 3; ++b) {
      const std::string blk = "backbone.layer" + std::to_string(s) + "." + std::to_string(b) + ".";
      want[unit_name(blk + "conv1", widths[s - 1])] = {
          widths[s - 1], {blk + "conv1", blk + "bn1"}, {blk + "bn1", blk + "conv2"}};
    }
  }
  // The residual path of each stage: the stem (or the first block's conv2 and projection
  // shortcut) and every block's conv2 + bn2 write it; every block's conv1 and the next stage
  // (or the head) read it.
  for (int s = 1; s <= 3; ++s) {
    const std::string layer = "backbone.layer" + std::to_string(s) + ".";
    Unit u{widths[s - 1], {}, {}};
    if (s == 1) {
      u.out = {"backbone.conv1", "backbone.bn1"};
      u.in = {"backbone.bn1"};
    } else {
      u.out = {layer + "0.downsample.0", layer + "0.downsample.1"};
      u.in = {layer + "0.downsample.1"};
    }
    for (int b = 0; b < 3; ++b) {
      const std::string blk = layer + std::to_string(b) + ".";
      u.out.insert({blk + "conv2", blk + "bn2"});
      u.in.insert(blk + "bn2");
      if (s == 1 || b > 0) u.in.insert(blk + "conv1");
    }
    if (s < 3) {
      const std::string next = "backbone.layer" + std::to_string(s + 1) + ".0.";
      u.in.insert({next + "conv1", next + "downsample.0"});
    } else {
      u.in.insert("head.fc");
    }
    // Named after the first op that writes it, in graph order: the stem, else the first conv2.
    want[s == 1 ? unit_name("backbone.conv1", 16) : unit_name(layer + "0.conv2", widths[s - 1])] =
        u;
  }
  // A stage's first conv1 reads the previous stage's unit, not its own.
  CHECK(whole_units(analysis) == want);
  CHECK(analysis.units.size() == 12);
  CHECK(analysis.units.front().name == "backbone.conv1_(0, 16)_16");

  // The input (1 channel) and the logits are frozen.
  std::map<std::string, std::string> frozen;
  for (const auto& u : analysis.frozen) frozen[u.name] = u.frozen_because;
  CHECK(frozen == std::map<std::string, std::string>{{"backbone.conv1_(0, 1)_1", "the model input"},
                                                     {"head.fc_(0, 10)_10", "the model output"}});
  CHECK(analysis.warnings.empty());
}

TEST_CASE("ResNet-50's channel units: two per bottleneck inside, one per stage on the residual path",
          "[channel]") {
  torch::manual_seed(0);
  auto model = std::dynamic_pointer_cast<Model>(test::build_model(
      test::classifier({{"type", "ResNet"}, {"depth", 50}}, 2048)));
  REQUIRE(model);
  const auto analysis = test::analyze_units(
      *model, {1, 3, 64, 64}, [&](const torch::Tensor& x) { return model->forward_tensor(x); });

  std::map<std::string, Unit> want;
  const std::vector<int> blocks = {3, 4, 6, 3};
  const std::vector<int64_t> mid = {64, 128, 256, 512};
  // The stem's unit: the stem writes it, the first block (its conv1 and projection) reads it.
  want[unit_name("backbone.conv1", 64)] = {
      64, {"backbone.conv1", "backbone.bn1"}, {"backbone.bn1", "backbone.layer1.0.conv1", "backbone.layer1.0.downsample.0"}};
  for (int s = 1; s <= 4; ++s) {
    const std::string layer = "backbone.layer" + std::to_string(s) + ".";
    const int64_t c = mid[s - 1];
    Unit path{4 * c, {layer + "0.downsample.0", layer + "0.downsample.1"}, {layer + "0.downsample.1"}};
    for (int b = 0; b < blocks[s - 1]; ++b) {
      const std::string blk = layer + std::to_string(b) + ".";
      want[unit_name(blk + "conv1", c)] = {c, {blk + "conv1", blk + "bn1"}, {blk + "bn1", blk + "conv2"}};
      want[unit_name(blk + "conv2", c)] = {c, {blk + "conv2", blk + "bn2"}, {blk + "bn2", blk + "conv3"}};
      path.out.insert({blk + "conv3", blk + "bn3"});
      path.in.insert(blk + "bn3");
      if (b > 0) path.in.insert(blk + "conv1");
    }
    if (s < 4) {
      const std::string next = "backbone.layer" + std::to_string(s + 1) + ".0.";
      path.in.insert({next + "conv1", next + "downsample.0"});
    } else {
      path.in.insert("head.fc");
    }
    // Named as MMRazor names it: after the first block's conv3, which writes it first.
    want[unit_name(layer + "0.conv3", 4 * c)] = path;
  }
  CHECK(whole_units(analysis) == want);
  CHECK(analysis.units.size() == 1 + 2 * 16 + 4);
  CHECK(analysis.warnings.empty());
}

TEST_CASE("MobileNetV2's channel units: depthwise convs pass the expand conv's unit through",
          "[channel]") {
  torch::manual_seed(0);
  auto model = std::dynamic_pointer_cast<Model>(test::build_model(
      test::classifier({{"type", "MobileNetV2"}, {"in_channels", 1}, {"stem_stride", 1}}, 1280)));
  REQUIRE(model);
  const auto analysis = test::analyze_units(
      *model, {1, 1, 16, 16}, [&](const torch::Tensor& x) { return model->forward_tensor(x); });

  std::map<std::string, Unit> want;
  std::string current = unit_name("backbone.conv1.conv", 32);
  want[current] = {32, {"backbone.conv1.conv", "backbone.conv1.bn"}, {"backbone.conv1.bn"}};
  int64_t channels = 32;
  const int64_t settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (int i = 0; i < 7; ++i) {
    const int64_t t = settings[i][0], c = settings[i][1], n = settings[i][2];
    for (int64_t b = 0; b < n; ++b) {
      const std::string blk =
          "backbone.layer" + std::to_string(i + 1) + "." + std::to_string(b) + ".conv.";
      const int64_t hidden = channels * t;
      std::string project;
      if (t != 1) {
        // expand conv -> BN -> depthwise conv -> BN -> project conv: one unit of `hidden`.
        want[current].in.insert(blk + "0.conv");
        want[unit_name(blk + "0.conv", hidden)] = {
            hidden,
            {blk + "0.conv", blk + "0.bn", blk + "1.conv", blk + "1.bn"},
            {blk + "0.bn", blk + "1.conv", blk + "1.bn", blk + "2.conv"}};
        project = blk + "2.";
      } else {
        // No expand conv: the depthwise conv passes the stem's unit on.
        want[current].out.insert({blk + "0.conv", blk + "0.bn"});
        want[current].in.insert({blk + "0.conv", blk + "0.bn", blk + "1.conv"});
        project = blk + "1.";
      }
      if (b == 0) {
        current = unit_name(project + "conv", c);
        want[current] = {c, {project + "conv", project + "bn"}, {project + "bn"}};
      } else {  // the residual add binds the block's output to its input
        want[current].out.insert({project + "conv", project + "bn"});
        want[current].in.insert(project + "bn");
      }
      channels = c;
    }
  }
  want[current].in.insert("backbone.conv2.conv");
  want[unit_name("backbone.conv2.conv", 1280)] = {
      1280, {"backbone.conv2.conv", "backbone.conv2.bn"}, {"backbone.conv2.bn", "head.fc"}};
  const auto found = whole_units(analysis);
  CHECK(found.size() == 25);
  CHECK(found == want);
  for (const auto& [name, unit] : want) {
    auto it = found.find(name);
    if (it == found.end()) {
      FAIL_CHECK("missing unit " << name);
    } else if (!(it->second == unit)) {
      FAIL_CHECK(name << ": found " << it->second << ", want " << unit);
    }
  }
}

TEST_CASE("A concat gives each producer its slice of the consumer", "[channel]") {
  Net net;
  auto a = net.add_op("a", test::same_conv(3, 4)), b = net.add_op("b", test::same_conv(3, 6)),
       c = net.add_op("c", test::same_conv(10, 5));
  auto bn = net.add_op("bn", std::make_shared<nn::BatchNorm2d>(10));
  auto relu = net.add_op("relu", std::make_shared<nn::ReLU>());
  auto cat = net.add_op("cat", std::make_shared<nn::Concat>(1));
  auto head = net.add_op("head", test::same_conv(5, 2));
  net.body = [&](const torch::Tensor& x) {
    return (*head)((*relu)((*c)((*bn)((*cat)({(*a)(x), (*b)(x)})))));
  };
  nn::assign_paths(net);
  const auto analysis =
      test::analyze_units(net, {1, 3, 4, 4}, [&](const torch::Tensor& x) { return net(x); });

  REQUIRE(analysis.units.size() == 3);
  CHECK(analysis.units[0].name == "a_(0, 4)_4");
  CHECK(analysis.units[0].num_channels == 4);
  CHECK(members(analysis.units[0]) ==
        std::make_pair(std::vector<std::string>{"a[0,4)", "bn[0,4)"},
                       std::vector<std::string>{"bn[0,4)", "c[0,4)"}));
  CHECK(analysis.units[1].name == "b_(0, 6)_6");
  CHECK(members(analysis.units[1]) ==
        std::make_pair(std::vector<std::string>{"b[0,6)", "bn[4,10)"},
                       std::vector<std::string>{"bn[4,10)", "c[4,10)"}));
  CHECK(analysis.units[2].name == "c_(0, 5)_5");
  CHECK(members(analysis.units[2]) ==
        std::make_pair(std::vector<std::string>{"c[0,5)"}, std::vector<std::string>{"head[0,5)"}));
}

TEST_CASE("A grouped conv ties its groups' slices, a depthwise conv passes its unit", "[channel]") {
  Net net;
  auto c1 = net.add_op("c1", test::same_conv(3, 8));
  auto grouped = net.add_op("grouped", test::same_conv(8, 12, 3, /*groups=*/2));
  auto bn = net.add_op("bn", std::make_shared<nn::BatchNorm2d>(12));
  auto depthwise = net.add_op("depthwise", test::same_conv(12, 12, 3, /*groups=*/12));
  auto c3 = net.add_op("c3", test::same_conv(12, 5));
  net.body = [&](const torch::Tensor& x) {
    return (*c3)((*depthwise)((*bn)((*grouped)((*c1)(x)))));
  };
  nn::assign_paths(net);
  const auto analysis =
      test::analyze_units(net, {1, 3, 6, 6}, [&](const torch::Tensor& x) { return net(x); });

  REQUIRE(analysis.units.size() == 2);
  // Channel j of each input group is pruned with channel j of the other: 4 channels, 2 slices.
  CHECK(analysis.units[0].name == "c1_(0, 4)_4");
  CHECK(analysis.units[0].num_channels == 4);
  CHECK(members(analysis.units[0]) ==
        std::make_pair(std::vector<std::string>{"c1[0,4)", "c1[4,8)"},
                       std::vector<std::string>{"grouped[0,4)", "grouped[4,8)"}));
  CHECK(analysis.units[1].name == "grouped_(0, 6)_6");
  CHECK(members(analysis.units[1]) ==
        std::make_pair(std::vector<std::string>{"grouped[0,6)", "grouped[6,12)", "bn[0,6)",
                                                "bn[6,12)", "depthwise[0,6)", "depthwise[6,12)"},
                       std::vector<std::string>{"bn[0,6)", "bn[6,12)", "depthwise[0,6)",
                                                "depthwise[6,12)", "c3[0,6)", "c3[6,12)"}));
  REQUIRE(analysis.frozen.size() == 2);
  CHECK(analysis.frozen[1].name == "c3_(0, 5)_5");
}

TEST_CASE("Flatten into a linear maps each channel to its spatial size of features", "[channel]") {
  Net net;
  auto c = net.add_op("conv", test::same_conv(3, 4));
  auto bn = net.add_op("bn", std::make_shared<nn::BatchNorm2d>(4));
  auto relu = net.add_op("relu", std::make_shared<nn::ReLU>());
  auto flatten = net.add_op("flatten", std::make_shared<nn::Flatten>(1));
  auto fc = net.add_op("fc", std::make_shared<nn::Linear>(16, 7));
  auto fc2 = net.add_op("fc2", std::make_shared<nn::Linear>(7, 3));
  net.body = [&](const torch::Tensor& x) {
    return (*fc2)((*relu)((*fc)((*flatten)((*relu)((*bn)((*c)(x)))))));
  };
  nn::assign_paths(net);
  const auto analysis =
      test::analyze_units(net, {2, 3, 2, 2}, [&](const torch::Tensor& x) { return net(x); });

  REQUIRE(analysis.units.size() == 2);
  CHECK(analysis.units[0].name == "conv_(0, 4)_4");
  CHECK(analysis.units[0].num_channels == 4);
  CHECK(members(analysis.units[0]) ==
        std::make_pair(std::vector<std::string>{"conv[0,4)", "bn[0,4)"},
                       std::vector<std::string>{"bn[0,4)", "fc[0,16)x4"}));
  CHECK(analysis.units[1].name == "fc_(0, 7)_7");

  // MMRazor's JSON: expand_ratio on the linear's input.
  const Json config =
      channel::units_config(analysis, /*with_channels=*/true, /*with_init_args=*/true);
  const Json& unit = config["conv_(0, 4)_4"];
  CHECK(unit["init_args"] == Json{{"num_channels", 4},
                                  {"choice_mode", "ratio"},
                                  {"divisor", 1},
                                  {"min_value", 1},
                                  {"min_ratio", 0.9}});
  CHECK(unit["choice"] == 1.0);
  CHECK(unit["channels"]["input_related"][1] == Json{{"name", "fc"},
                                                     {"start", 0},
                                                     {"end", 16},
                                                     {"expand_ratio", 4},
                                                     {"is_output_channel", false}});
  CHECK(unit["channels"]["output_related"][0]["name"] == "conv");
  CHECK(channel::units_config(analysis, false, false) ==
        Json{{"conv_(0, 4)_4", {{"choice", 1.0}}}, {"fc_(0, 7)_7", {{"choice", 1.0}}}});
  CHECK(channel::choice_template(analysis) == Json{{"conv_(0, 4)_4", 1.0}, {"fc_(0, 7)_7", 1.0}});
}

TEST_CASE("An add and a broadcast gate bind channels, a module called twice is one set of weights",
          "[channel]") {
  Net net;
  auto a = net.add_op("a", test::same_conv(3, 8));
  auto shared = net.add_op("shared", test::same_conv(8, 8, 3));
  auto relu = net.add_op("relu", std::make_shared<nn::ReLU>());
  auto pool = net.add_op("pool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
  auto squeeze = net.add_op("squeeze", test::same_conv(8, 2));
  auto excite = net.add_op("excite", test::same_conv(2, 8));
  auto gate = net.add_op("gate", std::make_shared<nn::Sigmoid>());
  auto mul = net.add_op("mul", std::make_shared<nn::Mul>());
  auto add = net.add_op("add", std::make_shared<nn::Add>());
  auto head = net.add_op("head", test::same_conv(8, 3));
  net.body = [&](const torch::Tensor& x) {
    auto y = (*a)(x);
    auto z = (*shared)((*relu)((*shared)(y)));  // the same conv twice
    auto s = (*gate)((*excite)((*relu)((*squeeze)((*pool)(z)))));
    return (*head)((*add)({(*mul)({z, s}), y}));
  };
  nn::assign_paths(net);
  const auto analysis =
      test::analyze_units(net, {1, 3, 5, 5}, [&](const torch::Tensor& x) { return net(x); });

  // a's output, shared's input and output (both calls), excite's output (the gate) and the
  // add are one unit; squeeze makes a unit of its own.
  REQUIRE(analysis.units.size() == 2);
  CHECK(analysis.units[0].name == "a_(0, 8)_8");
  CHECK(members(analysis.units[0]) ==
        std::make_pair(std::vector<std::string>{"a[0,8)", "shared[0,8)", "excite[0,8)"},
                       std::vector<std::string>{"shared[0,8)", "squeeze[0,8)", "head[0,8)"}));
  CHECK(analysis.units[1].name == "squeeze_(0, 2)_2");
  CHECK(members(analysis.units[1]) == std::make_pair(std::vector<std::string>{"squeeze[0,2)"},
                                                     std::vector<std::string>{"excite[0,2)"}));
}

TEST_CASE("Ops the analyser does not follow freeze their channels with a warning naming them",
          "[channel]") {
  Net net;
  auto a = net.add_op("a", test::same_conv(3, 4));
  auto shuffle = net.add_op("shuffle", std::make_shared<nn::ChannelShuffle>(2));
  auto b = net.add_op("b", test::same_conv(4, 6));
  auto c = net.add_op("c", test::same_conv(6, 6));
  auto d = net.add_op("d", test::same_conv(6, 2));
  net.body = [&](const torch::Tensor& x) { return (*d)((*c)((*b)((*shuffle)((*a)(x))) * 2.0)); };
  nn::assign_paths(net);
  const auto analysis =
      test::analyze_units(net, {1, 3, 4, 4}, [&](const torch::Tensor& x) { return net(x); });

  // Only c's output unit is prunable: a's goes through the shuffle, b's through code.
  REQUIRE(analysis.units.size() == 1);
  CHECK(analysis.units[0].name == "c_(0, 6)_6");
  std::map<std::string, std::string> frozen;
  for (const auto& u : analysis.frozen) frozen[u.name] = u.frozen_because;
  CHECK(frozen["a_(0, 4)_4"] == "shuffle (ChannelShuffle) is not followed by the channel analyser");
  CHECK(frozen["b_(0, 6)_6"] == "the output of b is read only by code between modules");
  CHECK(frozen["d_(0, 2)_2"] == "the model output");
  REQUIRE(analysis.warnings.size() == 1);
  CHECK_THAT(analysis.warnings[0],
             Catch::Contains("ChannelShuffle is not followed") && Catch::Contains("shuffle"));

  // Nothing prunable is an error that says why.
  Net tiny;
  auto fc = tiny.add_op("fc", std::make_shared<nn::Linear>(4, 2));
  tiny.body = [&](const torch::Tensor& x) { return (*fc)(x.flatten(1)); };
  nn::assign_paths(tiny);
  const std::string error = test::error_of([&] {
    test::analyze_units(tiny, {1, 4, 1, 1}, [&](const torch::Tensor& x) { return tiny(x); });
  });
  CHECK_THAT(error, Catch::Contains("no prunable channel units") &&
                        Catch::Contains("2 units are frozen") &&
                        Catch::Contains("the model output"));
}

TEST_CASE("ChannelAnalyzer reads MMRazor's parse_cfg and rejects bad keys", "[channel]") {
  auto options = ChannelAnalyzer::options_from(
      Json{
          {"type", "ChannelAnalyzer"}, {"demo_input", {1, 1, 28, 28}}, {"tracer_type", "FxTracer"}},
      "parse_cfg");
  CHECK(options.demo_input == std::vector<int64_t>{1, 1, 28, 28});
  CHECK(options.tracer_type == "FxTracer");
  options = ChannelAnalyzer::options_from(
      Json{{"demo_input", {{"type", "DefaultDemoInput"}, {"input_shape", {2, 3, 8, 8}}}}},
      "parse_cfg");
  CHECK(options.demo_input == std::vector<int64_t>{2, 3, 8, 8});
  CHECK_THAT(test::error_of([] {
               ChannelAnalyzer::options_from(Json{{"tracer_type", "Fx"}}, "model.parse_cfg");
             }),
             Catch::Contains("model.parse_cfg.tracer_type") && Catch::Contains("\"Fx\""));
  CHECK_THAT(test::error_of([] {
               ChannelAnalyzer::options_from(Json{{"demo_input", {1, 3, 0, 8}}}, "p");
             }),
             Catch::Contains("p.demo_input"));
  CHECK_THAT(test::error_of([] {
               ChannelAnalyzer::options_from(Json{{"demo_inputs", {1, 3, 8, 8}}}, "p");
             }),
             Catch::Contains("unknown key \"demo_inputs\""));
}
