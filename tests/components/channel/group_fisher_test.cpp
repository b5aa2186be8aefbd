// GroupFisher's channel importance: a unit's Fisher information against a plain LibTorch
// computation (autograd's gradient at the consumer's input), at full and at reduced width;
// the FLOPs and activations a channel costs; the mutator removing the channel of least
// importance among the units it may prune.
#include "components/channel/group_fisher_channel_unit.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/channel/channel_selection.h"
#include "components/mutators/group_fisher_channel_mutator.h"
#include "tests/components/architectures/build.h"
#include "tests/components/channel/nets.h"

using namespace razor;

namespace {

/// conv1 (3 -> 4, 3x3) -> ReLU -> conv2 (4 -> 2, 1x1): one unit of 4 channels between them.
struct TwoConvs {
  std::shared_ptr<test::OpNet> net = std::make_shared<test::OpNet>();
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::ReLU> relu;
  TwoConvs() {
    conv1 = net->add_op("conv1", test::same_conv(3, 4, 3));
    relu = net->add_op("relu", std::make_shared<nn::ReLU>());
    conv2 = net->add_op("conv2", test::same_conv(4, 2, 1));
    net->body = [this](const torch::Tensor& x) { return (*conv2)((*relu)((*conv1)(x))); };
    nn::assign_paths(*net);
  }
};

/// sum over samples of (sum over pixels of a * dL/da)^2 per channel, a = the ReLU's output
/// restricted to `kept`, L = sum of squares of the output.
torch::Tensor expected_fisher(TwoConvs& m, const torch::Tensor& x, const torch::Tensor& kept) {
  const torch::Tensor index = kept.nonzero().flatten();
  const auto w1 = m.conv1->weight.detach(), b1 = m.conv1->bias.detach();
  const auto w2 = m.conv2->weight.detach(), b2 = m.conv2->bias.detach();
  torch::Tensor a = torch::relu(torch::conv2d(x, w1, b1, 1, 1)).index_select(1, index).detach().requires_grad_(true);
  const torch::Tensor out = torch::conv2d(a, w2.index_select(1, index), b2);
  const torch::Tensor g = torch::autograd::grad({out.pow(2).sum()}, {a})[0];
  const torch::Tensor f = (a * g).sum({2, 3}).to(torch::kDouble);
  torch::Tensor full = torch::zeros({x.size(0), 4}, torch::kDouble);
  full.index_copy_(1, index, f);
  return full.pow(2).sum(0);
}

double run_recorded(TwoConvs& m, channel::GroupFisherChannelUnit& unit, const torch::Tensor& x) {
  unit.reset_recorded();
  unit.start_record();
  const torch::Tensor loss = m.net->forward(x).pow(2).sum();
  loss.backward();
  unit.end_record();
  return loss.item<double>();
}

}  // namespace

TEST_CASE("GroupFisher's Fisher information is sum_b (sum_hw a * dL/da)^2, at full and reduced width",
          "[channel][group_fisher]") {
  torch::manual_seed(0);
  TwoConvs m;
  const auto analysis = test::analyze_units(*m.net, {1, 3, 6, 6}, [&](const torch::Tensor& x) { return m.net->forward(x); });
  REQUIRE(analysis.units.size() == 1);
  channel::MutableChannelUnitOptions options;
  channel::GroupFisherChannelUnit unit(analysis.units[0], options);
  const torch::Tensor x = torch::randn({3, 3, 6, 6});

  const torch::Tensor all = torch::ones({4}, torch::kBool);
  run_recorded(m, unit, x);
  CHECK(torch::allclose(unit.batch_fisher(), expected_fisher(m, x, all), 1e-6, 1e-9));
  // What one channel costs: conv1's output channel reads 3 inputs with a 3x3 kernel on 6x6,
  // conv2's input channel feeds 2 outputs; conv1's output channel is 6x6 activations.
  CHECK(unit.delta_flops() == 6 * 6 * 9 * 3 + 6 * 6 * 1 * 2);
  CHECK(unit.delta_memory() == 36);
  unit.update_fisher(all, /*across_ranks=*/false);
  CHECK(torch::allclose(unit.accumulated(), expected_fisher(m, x, all) / (1044 / 1e9), 1e-6));

  // With channel 1 pruned the ops compute with 3 channels; the Fisher maps back to them.
  const torch::Tensor kept = torch::tensor({true, false, true, true});
  channel::ChannelSelection selection(analysis.units);
  selection.keep(0, kept);
  selection.apply();
  run_recorded(m, unit, x);
  const torch::Tensor fisher = unit.batch_fisher();
  CHECK(fisher[1].item<double>() == 0);
  CHECK(torch::allclose(fisher, expected_fisher(m, x, kept), 1e-6, 1e-9));
  CHECK(unit.delta_flops() == 6 * 6 * 9 * 3 + 6 * 6 * 2);
  // The pruned channel ranks last: it cannot be pruned again.
  const torch::Tensor importance = unit.fisher_importance(kept);
  CHECK(importance[1].item<double>() == importance.max().item<double>());
  CHECK(importance.argmin().item<int64_t>() != 1);
  selection.clear();
}

TEST_CASE("GroupFisherChannelMutator removes the channel of least importance among the units it may prune",
          "[channel][group_fisher]") {
  auto model = std::dynamic_pointer_cast<Model>(
      test::build_model(test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 8}, {"in_channels", 1}}, 64)));
  REQUIRE(model);
  GroupFisherChannelMutator mutator(ChannelMutatorOptions::from(
      Json::parse(R"({"type": "GroupFisherChannelMutator",
                      "parse_cfg": {"type": "ChannelAnalyzer", "demo_input": [1, 1, 28, 28]}})"),
      "mutator", ""));
  mutator.prepare_from_supernet(*model);
  REQUIRE(mutator.units().size() == 6);
  // Hand-made importances: the smallest in the unit the classifier reads (not prunable
  // without mutate_linear), the next smallest in layer2.0.conv1's channel 5.
  const std::string last = "backbone.layer3.0.conv2_(0, 64)_64", target = "backbone.layer2.0.conv1_(0, 32)_32";
  for (const auto& u : mutator.units()) {
    auto& unit = dynamic_cast<channel::GroupFisherChannelUnit&>(*u);
    CHECK(unit.type() == "GroupFisherChannelUnit");
    CHECK(unit.is_mutable() == (unit.name() != last));
    torch::Tensor f = torch::arange(unit.num_channels(), torch::kDouble) + 10;
    if (unit.name() == last) f[3] = 0.5;
    if (unit.name() == target) f[5] = 1.0;
    unit.set_accumulated(f);
  }
  CHECK(mutator.try_prune() == target);
  CHECK(mutator.unit(target).width() == 31);
  CHECK_FALSE(mutator.mask_of(target)[5].item<bool>());
  CHECK(mutator.unit(target).current_choice() == 31);
  // Channel 5 now ranks last; the least left is 10, channel 0 of every prunable unit: the
  // first unit in graph order wins the tie.
  CHECK(mutator.try_prune() == "backbone.conv1_(0, 16)_16");
  CHECK_FALSE(mutator.mask_of("backbone.conv1_(0, 16)_16")[0].item<bool>());
  CHECK(mutator.to_config()["type"] == "GroupFisherChannelMutator");
  CHECK(mutator.to_config()["channel_unit_cfg"]["units"][target]["init_args"]["normalization_type"] == "flops");
}
