// OneShot and slimmable channels: candidate widths made divisible and sorted as MMRazor's,
// choices restricted to them and sampled uniformly; the switchable BatchNorm (one BatchNorm
// per width: its own statistics, its static form) against torch::batch_norm; the slimmable
// mutator's subnets on ResNet-20, and a subnet cut to a static model computing the same.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <map>

#include "components/channel/mutable_channel_unit.h"
#include "components/mutators/channel_mutator.h"
#include "components/nn/nn.h"
#include "engine/dist.h"
#include "tests/components/architectures/build.h"

using namespace razor;
using channel::MutableChannelUnitOptions;
using channel::OneShotMutableChannelUnit;

namespace {

channel::ChannelUnitSpec spec_of(int64_t c, nn::Conv2d* maker) {
  channel::ChannelUnitSpec spec;
  spec.name = "u_(0, " + std::to_string(c) + ")_" + std::to_string(c);
  spec.num_channels = c;
  spec.output_related.push_back({"conv", maker, 0, c, 1, true});
  return spec;
}

}  // namespace

TEST_CASE("OneShot candidates are made divisible and sorted, duplicates kept, as MMRazor's", "[channel][slimmable]") {
  nn::Conv2d conv(nn::Conv2dOptions(3, 48, 1));
  // AutoSlim's space: i/12 for i in 2..12, divisor 8, on 48 channels.
  Json candidates = Json::array();
  for (int i = 12; i >= 2; --i) candidates.push_back(i / 12.0);
  const auto options = MutableChannelUnitOptions::from(
      {{"choice_mode", "ratio"}, {"divisor", 8}, {"candidate_choices", candidates}}, "unit", 48, "OneShotMutableChannelUnit");
  OneShotMutableChannelUnit unit(spec_of(48, &conv), options);
  CHECK(unit.candidate_widths() == std::vector<int64_t>{8, 16, 16, 24, 24, 32, 32, 40, 40, 48, 48});
  CHECK(unit.candidate_choices().front().get<double>() == Approx(1.0 / 6));
  CHECK(unit.max_choice() == Json(1.0));
  CHECK(unit.width() == 48);  // starts at the widest
  CHECK(unit.min_choice().get<double>() == Approx(1.0 / 6));

  // A candidate as given (0.25 became 16 channels), as stored, or by its width.
  unit.set_choice(Json(0.25));
  CHECK(unit.width() == 16);
  unit.set_choice(unit.candidate_choices()[3]);
  CHECK(unit.width() == 24);
  CHECK_THROWS_WITH(unit.set_choice(Json(1)), Catch::Contains("an integer"));

  // Uniform over the 11 candidates, from the generator given.
  at::Generator generator = dist::shared_generator(7, 1);
  std::map<int64_t, int> counts;
  for (int i = 0; i < 2200; ++i) {
    unit.set_choice(unit.sample_choice(generator));
    ++counts[unit.width()];
  }
  CHECK(counts.size() == 6);
  for (const auto& [width, n] : counts) {
    const int expected = width == 8 ? 200 : 400;  // 8 is one candidate, the others two
    CHECK(std::abs(n - expected) < 60);
  }

  // The defaults: ratio mode, [0.5, 1.0] (made divisible: 0.5 * 15 rounds to 8).
  nn::Conv2d odd(nn::Conv2dOptions(3, 15, 1));
  OneShotMutableChannelUnit halves(spec_of(15, &odd), MutableChannelUnitOptions::from(Json::object(), "unit", 15,
                                                                                       "OneShotMutableChannelUnit"));
  CHECK(halves.candidate_widths() == std::vector<int64_t>{8, 15});
  CHECK(halves.init_args()["candidate_choices"].size() == 2);
  CHECK_THROWS_WITH(halves.set_choice(Json(0.3)), Catch::Contains("not one of the unit's candidate_choices"));
  CHECK_THROWS_WITH(channel::SlimmableChannelUnit(spec_of(15, &odd), MutableChannelUnitOptions::from(
                                                                         Json::object(), "unit", 15, "SlimmableChannelUnit")),
                    Catch::Contains("needs candidate_choices"));
}

TEST_CASE("A switchable BatchNorm normalises each width with its own BatchNorm", "[channel][slimmable]") {
  torch::manual_seed(3);
  nn::BatchNorm2d bn(6);
  {
    torch::NoGradGuard no_grad;
    bn.weight.uniform_(0.5, 1.5);
    bn.bias.uniform_(-1, 1);
    bn.running_mean.uniform_(-1, 1);
  }
  bn.set_candidate_widths({2, 4});
  CHECK(bn.candidate_widths() == std::vector<int64_t>{2, 4});
  const auto state = bn.named_parameters();
  REQUIRE(state.contains("candidate_bn.2.weight"));
  REQUIRE(state.contains("candidate_bn.4.bias"));
  // Each starts as the first channels of the full one.
  CHECK(torch::equal(state["candidate_bn.4.weight"], bn.weight.narrow(0, 0, 4)));

  const torch::Tensor full_mean = bn.running_mean.clone();
  auto& bn4 = *bn.named_children()["candidate_bn"]->named_children()["4"]->as<nn::BatchNorm2d>();
  {
    torch::NoGradGuard no_grad;
    bn4.weight.fill_(2.0);  // its own affine parameters from here on
  }
  bn.train();
  bn.set_active_channels(torch::arange(4), torch::Tensor());
  const torch::Tensor x = torch::randn({8, 4, 3, 3});
  const torch::Tensor expected_mean = bn4.running_mean.clone();
  const torch::Tensor expected_var = bn4.running_var.clone();
  const torch::Tensor expected =
      torch::batch_norm(x, bn4.weight, bn4.bias, expected_mean, expected_var, true, 0.1, 1e-5, false);
  const torch::Tensor y = bn(x);
  CHECK(torch::allclose(y, expected, 1e-5, 1e-6));
  // Its statistics moved, the full BatchNorm's did not.
  CHECK(torch::allclose(bn4.running_mean, expected_mean));
  CHECK(!torch::allclose(bn4.running_mean, full_mean.narrow(0, 0, 4)));
  CHECK(torch::equal(bn.running_mean, full_mean));
  CHECK(bn4.num_batches_tracked.item<int64_t>() == 1);

  // A width without a BatchNorm of its own, or channels that are not the first ones.
  bn.set_active_channels(torch::arange(3), torch::Tensor());
  CHECK_THROWS_WITH(bn(torch::randn({2, 3, 2, 2})), Catch::Contains("no BatchNorm for these 3 active channels"));
  bn.set_active_channels(torch::tensor({1, 2}), torch::Tensor());
  CHECK_THROWS(bn(torch::randn({2, 2, 2, 2})));

  // The static form at width 4: that BatchNorm alone, computing the same in eval mode.
  bn.eval();
  bn.set_active_channels(torch::arange(4), torch::Tensor());
  const torch::Tensor before = bn(x);
  bn.make_static();
  CHECK(bn.num_features() == 4);
  CHECK(bn.candidate_widths().empty());
  CHECK(bn.named_parameters().size() == 2);
  CHECK(torch::allclose(bn(x), before));
}

TEST_CASE("SlimmableChannelMutator: subnet i is every unit's i-th candidate, cut static it computes the same",
          "[channel][slimmable]") {
  torch::manual_seed(0);
  auto model = std::dynamic_pointer_cast<Model>(
      test::build_model(test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)));
  REQUIRE(model);
  nn::assign_paths(*model);
  ChannelMutator mutator(ChannelMutatorOptions::from(Json::parse(R"({
      "type": "SlimmableChannelMutator",
      "channel_unit_cfg": {"default_args": {"choice_mode": "ratio", "candidate_choices": [0.25, 0.5, 1.0]}},
      "parse_cfg": {"type": "ChannelAnalyzer", "demo_input": [1, 1, 28, 28]}})"),
                                                     "model.mutator", ""));
  CHECK(mutator.options().unit_type == "SlimmableChannelUnit");
  mutator.prepare_from_supernet(*model);
  const std::vector<Json> subnets = mutator.subnets();
  REQUIRE(subnets.size() == 3);
  CHECK(subnets[0]["backbone.layer2.0.conv1_(0, 32)_32"] == Json(0.25));
  CHECK(subnets[2]["backbone.layer3.0.conv2_(0, 64)_64"] == Json(1.0));
  // Min and max samples are the first and last subnets.
  at::Generator generator = dist::shared_generator(1, 2);
  CHECK(mutator.sample_choices("min", generator) == subnets[0]);
  CHECK(mutator.sample_choices("max", generator) == subnets[2]);

  // Train a step at each width so that the per-width statistics differ, then compare.
  model->train();
  for (const auto& subnet : subnets) {
    mutator.set_choices(subnet);
    (void)model->forward_tensor(torch::randn({16, 1, 28, 28}) * 2 + 1);
  }
  model->eval();
  mutator.set_choices(subnets[1]);
  const torch::Tensor x = torch::randn({4, 1, 28, 28});
  const torch::Tensor dynamic = model->forward_tensor(x);
  mutator.make_static();
  for (const auto& item : model->named_parameters()) CHECK(item.key().find("candidate_bn") == std::string::npos);
  CHECK(torch::allclose(model->forward_tensor(x), dynamic, 1e-4, 1e-5));
}
