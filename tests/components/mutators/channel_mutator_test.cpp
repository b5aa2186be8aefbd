// Mutable channel units (ratio and number choices, make_divisible, L1 selection on hand-made
// weights) and MMRazor's ChannelMutator on ResNet-20: choices by unit name, templates, the
// static form, bad input.
#include "components/mutators/channel_mutator.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/nn/nn.h"
#include "tests/components/architectures/build.h"

using namespace razor;
using channel::L1MutableChannelUnit;
using channel::MutableChannelUnitOptions;
using channel::SequentialMutableChannelUnit;

namespace {

/// A unit of `c` channels made by `makers` (convs whose outputs it is).
channel::ChannelUnitSpec spec_of(int64_t c, const std::vector<nn::Conv2d*>& makers) {
  channel::ChannelUnitSpec spec;
  spec.name = "u_(0, " + std::to_string(c) + ")_" + std::to_string(c);
  spec.num_channels = c;
  for (auto* conv : makers) spec.output_related.push_back({"conv", conv, 0, c, 1, true});
  return spec;
}

std::vector<int64_t> kept(const torch::Tensor& mask) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < mask.size(0); ++i) {
    if (mask[i].item<bool>()) out.push_back(i);
  }
  return out;
}

std::shared_ptr<Model> resnet20() {
  auto model = std::dynamic_pointer_cast<Model>(
      test::build_model(test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)));
  REQUIRE(model);
  model->eval();
  return model;
}

ChannelMutatorOptions l1_ratio_options() {
  return ChannelMutatorOptions::from(Json::parse(R"({
      "type": "ChannelMutator",
      "channel_unit_cfg": {"type": "L1MutableChannelUnit", "default_args": {"choice_mode": "ratio"}},
      "parse_cfg": {"type": "ChannelAnalyzer", "demo_input": [1, 1, 28, 28], "tracer_type": "FxTracer"}})"),
                                     "model.mutator", "");
}

}  // namespace

TEST_CASE("make_divisible rounds as MMRazor's", "[channel][mutator]") {
  CHECK(channel::make_divisible(20, 8, 8) == 24);   // int(20 + 4) // 8 * 8
  CHECK(channel::make_divisible(10, 8, 8) == 16);   // 8 < 0.9 * 10: one divisor more
  CHECK(channel::make_divisible(3, 8, 8) == 8);     // at least min_value
  CHECK(channel::make_divisible(12, 4, 1) == 12);
  CHECK(channel::make_divisible(13, 4, 1) == 12);   // int(13 + 2) // 4 * 4, not below 0.9 * 13
}

TEST_CASE("A unit's choice is a ratio or a number, wrong kinds and ranges are errors", "[channel][mutator]") {
  nn::Conv2d conv(nn::Conv2dOptions(3, 16, 1));
  MutableChannelUnitOptions ratio;
  ratio.choice_mode = "ratio";
  SequentialMutableChannelUnit unit(spec_of(16, {&conv}), ratio);
  CHECK(unit.width() == 16);
  CHECK(unit.width_of(Json(0.5)) == 8);
  CHECK(unit.width_of(Json(0.3)) == 4);  // int(16 * 0.3)
  CHECK(unit.width_of(Json(0.01)) == 1);
  CHECK_THROWS_WITH(unit.width_of(Json(1)), Catch::Contains("ratio in (0, 1]") && Catch::Contains("an integer"));
  CHECK_THROWS_WITH(unit.width_of(Json(0.0)), Catch::Contains("(0, 1]"));
  CHECK_THROWS_WITH(unit.width_of(Json(1.5)), Catch::Contains("(0, 1]"));
  unit.set_choice(Json(0.25));
  CHECK(kept(unit.mask()) == std::vector<int64_t>{0, 1, 2, 3});  // a prefix

  MutableChannelUnitOptions number;
  number.divisor = 8;
  SequentialMutableChannelUnit divisible(spec_of(16, {&conv}), number);
  CHECK(divisible.width_of(Json(5)) == 8);
  CHECK(divisible.width_of(Json(13)) == 16);
  CHECK_THROWS_WITH(divisible.width_of(Json(17)), Catch::Contains("[1, 16]"));
  CHECK_THROWS_WITH(divisible.width_of(Json(0.5)), Catch::Contains("channel count"));

  CHECK_THROWS_WITH(MutableChannelUnitOptions::from(Json{{"choice_mode", "ratios"}}, "cfg", 16),
                    Catch::Contains("cfg.choice_mode"));
  CHECK_THROWS_WITH(MutableChannelUnitOptions::from(Json{{"num_channels", 8}}, "cfg", 16),
                    Catch::Contains("has 16 channels"));
  CHECK_THROWS_WITH(MutableChannelUnitOptions::from(Json{{"divisr", 8}}, "cfg", 16), Catch::Contains("unknown key"));
}

TEST_CASE("L1 units keep the channels of largest mean |W|, averaged over the convs that make them",
          "[channel][mutator]") {
  nn::Conv2d a(nn::Conv2dOptions(2, 4, 1).with_bias(false)), b(nn::Conv2dOptions(3, 4, 1).with_bias(false));
  {
    torch::NoGradGuard no_grad;
    // Mean |W| per output channel: a = [0.5, 2, 2, 1], b = [1.5, 0, 2, 1].
    a.weight.copy_(torch::tensor({0.5f, -0.5f, 2.f, -2.f, 2.f, 2.f, -1.f, 1.f}).view({4, 2, 1, 1}));
    b.weight.copy_(torch::tensor({1.5f, -1.5f, 1.5f, 0.f, 0.f, 0.f, 2.f, 2.f, -2.f, 1.f, 1.f, 1.f}).view({4, 3, 1, 1}));
  }
  MutableChannelUnitOptions number;
  L1MutableChannelUnit alone(spec_of(4, {&a}), number);
  alone.set_choice(Json(2));
  CHECK(kept(alone.mask()) == std::vector<int64_t>{1, 2});  // 2 and 2: both, by index
  alone.set_choice(Json(1));
  CHECK(kept(alone.mask()) == std::vector<int64_t>{1});  // a tie goes to the lower index
  // Together: (a + b) / 2 = [1, 1, 2, 1].
  L1MutableChannelUnit both(spec_of(4, {&a, &b}), number);
  CHECK(torch::allclose(both.importance(), torch::tensor({1.f, 1.f, 2.f, 1.f})));
  both.set_choice(Json(2));
  CHECK(kept(both.mask()) == std::vector<int64_t>{0, 2});
  // Recomputed from the current weights.
  {
    torch::NoGradGuard no_grad;
    a.weight[3].fill_(10.f);
  }
  CHECK(kept(both.mask()) == std::vector<int64_t>{2, 3});
}

TEST_CASE("L2, FPGM, BN-scale and Taylor units keep the channels their importance ranks first", "[channel][mutator]") {
  // One input channel, 1x1 kernels: filter c is the vector W[c].
  nn::Conv2d conv(nn::Conv2dOptions(4, 4, 1).with_bias(false));
  nn::BatchNorm2d bn(4);
  {
    torch::NoGradGuard no_grad;
    // L1 (mean |W|) = [0.75, 1, 0.5, 2.5]; L2 = [3, 2, 2, 5]: 0 over 1 in L2, not in L1.
    conv.weight.copy_(torch::tensor({3.f, 0.f, 0.f, 0.f, 1.f, 1.f, 1.f, 1.f, 0.f, 2.f, 0.f, 0.f, 5.f, 5.f, 0.f, 0.f})
                          .view({4, 4, 1, 1}));
    bn.weight.copy_(torch::tensor({0.1f, -2.f, 0.5f, 1.f}));
  }
  channel::ChannelUnitSpec spec = spec_of(4, {&conv});
  spec.output_related.push_back({"bn", &bn, 0, 4, 1, true});
  MutableChannelUnitOptions number;

  channel::L2MutableChannelUnit l2(spec, number);
  CHECK(torch::allclose(l2.importance(), torch::tensor({3.f, 2.f, 2.f, std::sqrt(50.f)})));
  l2.set_choice(Json(2));
  CHECK(kept(l2.mask()) == std::vector<int64_t>{0, 3});
  L1MutableChannelUnit l1(spec, number);
  l1.set_choice(Json(2));
  CHECK(kept(l1.mask()) == std::vector<int64_t>{1, 3});

  // FPGM: the summed distance of each filter to the others, computed here pair by pair.
  const torch::Tensor w = conv.weight.detach().flatten(1);
  torch::Tensor distances = torch::zeros({4});
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 4; ++j) distances[i] += (w[i] - w[j]).pow(2).sum().sqrt();
  }
  channel::FPGMMutableChannelUnit fpgm(spec, number);
  CHECK(torch::allclose(fpgm.importance(), distances, 1e-5));
  fpgm.set_choice(Json(1));
  CHECK(kept(fpgm.mask()) == std::vector<int64_t>{3});  // the farthest from the others
  fpgm.set_choice(Json(3));
  // The filter nearest the others (the geometric median's neighbour) goes first.
  const int64_t nearest = distances.argmin().item<int64_t>();
  std::vector<int64_t> others;
  for (int64_t i = 0; i < 4; ++i) {
    if (i != nearest) others.push_back(i);
  }
  CHECK(kept(fpgm.mask()) == others);

  channel::BNScaleMutableChannelUnit scale(spec, number);
  CHECK(torch::allclose(scale.importance(), torch::tensor({0.1f, 2.f, 0.5f, 1.f})));
  scale.set_choice(Json(2));
  CHECK(kept(scale.mask()) == std::vector<int64_t>{1, 3});
  channel::BNScaleMutableChannelUnit no_bn(spec_of(4, {&conv}), number);
  CHECK_THROWS_WITH(no_bn.importance(), Catch::Contains("no affine BatchNorm"));
  CHECK(channel::make_unit("FPGMMutableChannelUnit", spec, number, "cfg")->type() == "FPGMMutableChannelUnit");

  // Taylor: (sum W * dL/dW)^2 per filter, from the gradients of the last backward; none yet
  // is an error naming the op. L = sum_c k_c * (W[c] . x), so dL/dW[c] = k_c x.
  channel::TaylorMutableChannelUnit taylor(spec, number);
  CHECK(taylor.needs_gradients());
  CHECK_FALSE(l2.needs_gradients());
  CHECK_THROWS_WITH(taylor.importance(), Catch::Contains("no gradient") && Catch::Contains("Taylor"));
  const torch::Tensor x = torch::tensor({1.f, -1.f, 2.f, 0.5f}).view({1, 4, 1, 1});
  const torch::Tensor k = torch::tensor({1.f, 3.f, -2.f, 0.1f});
  (conv(x).flatten() * k).sum().backward();
  torch::Tensor expected = torch::zeros({4});
  for (int64_t c = 0; c < 4; ++c) {
    double sum = 0;
    for (int64_t i = 0; i < 4; ++i) sum += w[c][i].item<double>() * k[c].item<double>() * x.flatten()[i].item<double>();
    expected[c] = sum * sum;
  }
  // W . x = [3, 2.5, -2, 0]: scores [9, 56.25, 16, 0].
  CHECK(torch::allclose(taylor.importance(), expected));
  taylor.set_choice(Json(2));
  CHECK(kept(taylor.mask()) == std::vector<int64_t>{1, 2});
  CHECK(channel::make_unit("TaylorMutableChannelUnit", spec, number, "cfg")->type() == "TaylorMutableChannelUnit");
  CHECK_THROWS_WITH(channel::make_unit("L3MutableChannelUnit", spec, number, "cfg"),
                    Catch::Contains("unknown channel unit type") && Catch::Contains("BNScaleMutableChannelUnit"));
}

TEST_CASE("ChannelMutator sets ResNet-20's units by name and cuts the model to them", "[channel][mutator]") {
  torch::manual_seed(0);
  auto model = resnet20();
  ChannelMutator mutator(l1_ratio_options());
  mutator.prepare_from_supernet(*model);
  REQUIRE(mutator.units().size() == 12);
  CHECK(mutator.choice_template()["backbone.layer1.0.conv1_(0, 16)_16"] == 1.0);

  auto& arch = *model;
  auto find = [&](const std::string& name) {
    for (const auto& item : arch.named_modules()) {
      if (item.key() == name) return std::dynamic_pointer_cast<nn::Conv2d>(item.value());
    }
    return std::shared_ptr<nn::Conv2d>();
  };
  auto conv1 = find("backbone.layer1.0.conv1"), conv2 = find("backbone.layer1.0.conv2");
  REQUIRE(conv1);
  REQUIRE(conv2);
  const auto x = torch::randn({2, 1, 28, 28});
  const auto full = model->forward_tensor(x);

  mutator.set_choices(Json{{"backbone.layer1.0.conv1_(0, 16)_16", 0.5}});
  // The 8 channels of largest L1 norm, on the conv that makes them and the one that reads them.
  const auto norm = conv1->weight.detach().flatten(1).abs().mean(1);
  const auto top = std::get<1>(norm.sort(true, 0, true)).narrow(0, 0, 8);
  const auto expected = std::get<0>(top.sort());
  CHECK(torch::equal(conv1->active_out(), expected));
  CHECK(torch::equal(conv2->active_in(), expected));
  CHECK(mutator.current_choices()["backbone.layer1.0.conv1_(0, 16)_16"] == 0.5);
  CHECK(mutator.current_choices()["backbone.layer2.0.conv1_(0, 32)_32"] == 1.0);
  const auto pruned = model->forward_tensor(x);
  CHECK_FALSE(torch::allclose(pruned, full));

  const Json config = mutator.config_template(true, true);
  CHECK(config["backbone.layer1.0.conv1_(0, 16)_16"]["init_args"]["choice_mode"] == "ratio");
  CHECK(config["backbone.layer1.0.conv1_(0, 16)_16"]["choice"] == 0.5);
  CHECK(config["backbone.layer1.0.conv1_(0, 16)_16"]["channels"]["output_related"].size() == 2);

  CHECK_THROWS_WITH(mutator.set_choices(Json{{"backbone.layer1.0.conv_(0, 16)_16", 0.5}}),
                    Catch::Contains("no channel unit") && Catch::Contains("backbone.layer1.0.conv1_(0, 16)_16"));
  CHECK_THROWS_WITH(mutator.set_choices(Json{{"backbone.layer1.0.conv1_(0, 16)_16", 8}}),
                    Catch::Contains("ratio mode"));

  mutator.make_static();
  CHECK(conv1->weight.sizes() == torch::IntArrayRef({8, 16, 3, 3}));
  CHECK(conv2->weight.sizes() == torch::IntArrayRef({16, 8, 3, 3}));
  CHECK(torch::allclose(model->forward_tensor(x), pruned, 1e-5, 1e-6));
}

TEST_CASE("ChannelMutator takes units from get_channel_units.py's JSON and rejects unknown ones",
          "[channel][mutator]") {
  auto model = resnet20();
  auto options = l1_ratio_options();
  options.units = Json::parse(R"({"backbone.layer2.1.conv1_(0, 32)_32": {"init_args": {"num_channels": 32,
      "choice_mode": "number", "divisor": 8}, "choice": 12}})");
  ChannelMutator mutator(options);
  mutator.prepare_from_supernet(*model);
  CHECK(mutator.unit("backbone.layer2.1.conv1_(0, 32)_32").width() == 16);  // 12 made divisible by 8
  CHECK(mutator.unit("backbone.layer2.1.conv1_(0, 32)_32").options().choice_mode == "number");
  CHECK(mutator.unit("backbone.layer3.1.conv1_(0, 64)_64").options().choice_mode == "ratio");

  auto wrong = l1_ratio_options();
  wrong.units = Json::parse(R"({"backbone.layer9.conv1_(0, 32)_32": {"choice": 0.5}})");
  ChannelMutator bad(wrong);
  CHECK_THROWS_WITH(bad.prepare_from_supernet(*model), Catch::Contains("no channel unit \"backbone.layer9.conv1_(0, 32)_32\""));
  CHECK_THROWS_WITH(ChannelMutatorOptions::from(Json{{"channel_unit_cfg", {{"typ", "L1MutableChannelUnit"}}}}, "m", ""),
                    Catch::Contains("m.channel_unit_cfg.typ"));
  auto unknown_type = l1_ratio_options();
  unknown_type.unit_type = "MagicChannelUnit";
  CHECK_THROWS_WITH(ChannelMutator(unknown_type).prepare_from_supernet(*model),
                    Catch::Contains("unknown channel unit type \"MagicChannelUnit\""));
}
