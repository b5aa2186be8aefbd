// The channels each member op computes with, from the channels each unit keeps (ranges,
// concat offsets, flatten expansion, grouped slices); the dynamic model against its static
// form; the analyser's forward check catching what the graph cannot see.
#include "components/channel/channel_selection.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <random>

#include "components/nn/nn.h"
#include "tests/components/architectures/build.h"
#include "tests/components/channel/nets.h"

using namespace razor;
using channel::ChannelAnalyzer;
using channel::ChannelSelection;
using Net = test::OpNet;

namespace {

std::vector<int64_t> values(const torch::Tensor& t) {
  if (!t.defined()) return {};
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

}  // namespace

TEST_CASE("Kept unit channels become each op's active channels, at the unit's offsets",
          "[channel]") {
  torch::manual_seed(0);
  Net net;
  auto a = net.add_op("a", test::same_conv(3, 4)), b = net.add_op("b", test::same_conv(3, 2));
  auto cat = net.add_op("cat", std::make_shared<nn::Concat>(1));
  auto bn = net.add_op("bn", std::make_shared<nn::BatchNorm2d>(6));
  auto grouped = net.add_op("grouped", test::same_conv(6, 4, 3, /*groups=*/2));
  auto flatten = net.add_op("flatten", std::make_shared<nn::Flatten>(1));
  auto fc = net.add_op("fc", std::make_shared<nn::Linear>(4 * 2 * 2, 3));
  net.body = [&](const torch::Tensor& x) {
    return (*fc)((*flatten)((*grouped)((*bn)((*cat)({(*a)(x), (*b)(x)})))));
  };
  nn::assign_paths(net);
  net.eval();
  const auto analysis =
      test::analyze_units(net, {2, 3, 2, 2}, [&](const torch::Tensor& x) { return net(x); });
  // The grouped conv reads 3 channels per group, a[0:3] | a[3] + b, so its groups tie a's
  // channel 0 to 3 ("a_(0, 1)_1") and a's 1, 2 to b's ("a_(1, 3)_2"); its output is one unit.
  std::vector<std::string> names;
  for (const auto& u : analysis.units) names.push_back(u.name);
  CHECK(names == std::vector<std::string>{"a_(0, 1)_1", "a_(1, 3)_2", "grouped_(0, 2)_2"});

  ChannelSelection selection(analysis.units);
  for (size_t u = 0; u < analysis.units.size(); ++u) {
    const auto& unit = analysis.units[u];
    if (unit.name == "grouped_(0, 2)_2") selection.keep(u, torch::tensor({false, true}));
  }
  selection.apply();
  // The grouped conv keeps channel 1 of each group of 2: 1 and 3; fc its features 4..7 and 12..15.
  CHECK(values(grouped->active_out()) == std::vector<int64_t>{1, 3});
  CHECK(values(fc->active_in()) == std::vector<int64_t>{4, 5, 6, 7, 12, 13, 14, 15});
  CHECK_FALSE(fc->active_out().defined());
  const auto x = torch::randn({2, 3, 2, 2});
  const auto dynamic = net(x);
  selection.make_static();
  CHECK(grouped->weight.size(0) == 2);
  CHECK(fc->weight.sizes() == torch::IntArrayRef({3, 8}));
  CHECK(torch::allclose(net(x), dynamic, 1e-5, 1e-6));
}

TEST_CASE("ResNet-20 at random widths equals its static form, with fewer parameters", "[channel]") {
  torch::manual_seed(0);
  auto model = std::dynamic_pointer_cast<Model>(test::build_model(
      test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)));
  REQUIRE(model);
  // Statistics that are not the identity, so a wrong slice shows.
  for (auto& buffer : model->named_buffers()) {
    torch::NoGradGuard no_grad;
    if (buffer.key().find("running_mean") != std::string::npos) buffer.value().normal_();
    if (buffer.key().find("running_var") != std::string::npos) buffer.value().uniform_(0.5, 2.0);
  }
  model->eval();
  auto forward = [&](const torch::Tensor& x) { return model->forward_tensor(x); };
  const auto analysis = test::analyze_units(*model, {1, 1, 28, 28}, forward);
  REQUIRE(analysis.units.size() == 12);

  ChannelSelection selection(analysis.units);
  std::mt19937_64 rng(3);
  int64_t kept = 0;
  for (size_t u = 0; u < analysis.units.size(); ++u) {
    const int64_t c = analysis.units[u].num_channels;
    torch::Tensor mask = torch::rand({c}) < 0.5;
    mask[static_cast<int64_t>(rng() % static_cast<uint64_t>(c))] = true;
    selection.keep(u, mask);
    kept += mask.sum().item<int64_t>();
  }
  selection.apply();
  const auto x = torch::randn({4, 1, 28, 28});
  const auto dynamic = model->forward_tensor(x);
  const int64_t before = test::num_parameters(*model);
  selection.make_static();
  CHECK(test::num_parameters(*model) < before);
  CHECK(torch::allclose(model->forward_tensor(x), dynamic, 1e-4, 1e-5));
  // The static model's own units have the kept widths.
  const auto again = test::analyze_units(*model, {1, 1, 28, 28}, forward);
  int64_t widths = 0;
  for (const auto& u : again.units) widths += u.num_channels;
  CHECK(widths == kept);
}

TEST_CASE("The forward check freezes a unit that code between modules also reads", "[channel]") {
  Net net;
  auto a = net.add_op("a", test::same_conv(3, 4));
  auto relu = net.add_op("relu", std::make_shared<nn::ReLU>());
  auto cat = net.add_op("cat", std::make_shared<nn::Concat>(1));
  auto c = net.add_op("c", test::same_conv(8, 5));
  auto d = net.add_op("d", test::same_conv(5, 2));
  net.body = [&](const torch::Tensor& x) {
    auto r = (*relu)((*a)(x));
    return (*d)((*c)((*cat)({r, r * 2.0})));  // r * 2: the graph sees an unknown value
  };
  nn::assign_paths(net);
  const auto analysis =
      test::analyze_units(net, {1, 3, 4, 4}, [&](const torch::Tensor& x) { return net(x); });
  REQUIRE(analysis.units.size() == 1);
  CHECK(analysis.units[0].name == "c_(0, 5)_5");
  std::string why;
  for (const auto& u : analysis.frozen) {
    if (u.name == "a_(0, 4)_4") why = u.frozen_because;
  }
  CHECK_THAT(why,
             Catch::StartsWith("a forward with ") && Catch::Contains("of its 4 channels fails"));
  // The check leaves every op at its full width.
  CHECK_FALSE(a->has_active_channels());
  CHECK_FALSE(c->has_active_channels());
}

TEST_CASE("Bad channel choices are clear errors", "[channel]") {
  Net net;
  auto a = net.add_op("a", test::same_conv(3, 4)), b = net.add_op("b", test::same_conv(4, 2));
  net.body = [&](const torch::Tensor& x) { return (*b)((*a)(x)); };
  nn::assign_paths(net);
  const auto analysis =
      test::analyze_units(net, {1, 3, 2, 2}, [&](const torch::Tensor& x) { return net(x); });
  ChannelSelection selection(analysis.units);
  CHECK_THROWS_WITH(selection.keep(0, torch::zeros({4}, torch::kBool)),
                    Catch::Contains("at least one channel"));
  CHECK_THROWS_WITH(selection.keep(0, torch::ones({3}, torch::kBool)),
                    Catch::Contains("a_(0, 4)_4") && Catch::Contains("shape [4]"));
  CHECK_THROWS_WITH(selection.keep_first(0, 5), Catch::Contains("in [1, 4]"));
  CHECK_THROWS(selection.keep(3, torch::ones({4}, torch::kBool)));
}
