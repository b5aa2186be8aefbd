// DCFF: the temperature schedule (MMRazor's closed form), the fusion rows against a plain
// loop over the formula, a fused conv computing with the fused filters and cut to a static
// conv that computes the same, and the algorithm on ResNet-20: units at their targets after
// the first step, the fusion matrices in the state dict, static_architecture equal to it.
#include "algorithms/pruning/dcff.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "apps/register_all.h"
#include "components/channel/dcff_channel_unit.h"
#include "components/nn/nn.h"
#include "engine/optim_wrapper.h"
#include "tests/components/architectures/build.h"

using namespace razor;

TEST_CASE("DCFF's temperature falls from 1 as MMRazor's closed form", "[pruning][dcff]") {
  // (cur, tau) for a long run, as computed from MMRazor's formula.
  CHECK(dcff_temperature(0, 1000) == Approx(1.0));
  CHECK(dcff_temperature(1, 1000) == Approx(2.1637e-4).epsilon(1e-4));
  CHECK(dcff_temperature(2, 1000) == Approx(1.3130e-4).epsilon(1e-4));
  CHECK(dcff_temperature(5, 1000) == Approx(1.0136e-4).epsilon(1e-4));
  CHECK(dcff_temperature(10, 1000) == Approx(1.0001e-4).epsilon(1e-4));
}

TEST_CASE("DCFF's fusion rows are the rows of P of the largest scores", "[pruning][dcff]") {
  torch::manual_seed(5);
  const int64_t c = 6, k = 3;
  const torch::Tensor w = torch::randn({c, 2, 3, 3});
  const double tau = 2.0;
  const torch::Tensor rows = channel::dcff_fusion_rows(w, k, tau);
  REQUIRE(rows.sizes() == torch::IntArrayRef({k, c}));
  // The formula with plain loops, in double.
  const torch::Tensor f = w.flatten(1).to(torch::kDouble);
  std::vector<std::vector<double>> p(c, std::vector<double>(c));
  for (int64_t i = 0; i < c; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += p[i][j] = std::exp(-(f[i] - f[j]).norm().item<double>() / tau);
    for (int64_t j = 0; j < c; ++j) p[i][j] /= sum;
  }
  std::vector<double> v(c, 0), score(c, 0);
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t m = 0; m < c; ++m) v[i] += std::log(p[i][m] + 1e-7) / c;
  }
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t j = 0; j < c; ++j) score[i] += (p[i][j] * std::log(p[i][j] + 1e-7) - p[i][j] * v[j]) / c;
  }
  std::vector<int64_t> order(c);
  for (int64_t i = 0; i < c; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  std::vector<int64_t> kept(order.begin(), order.begin() + k);
  std::sort(kept.begin(), kept.end());
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t j = 0; j < c; ++j) CHECK(rows[r][j].item<double>() == Approx(p[kept[r]][j]).margin(1e-6));
  }
  // Each row a distribution over the filters.
  CHECK(torch::allclose(rows.sum(1), torch::ones({k}), 1e-5));
}

TEST_CASE("A fused conv computes with the fused filters and cuts to a conv computing the same", "[pruning][dcff]") {
  torch::manual_seed(2);
  nn::Conv2d conv(nn::Conv2dOptions(4, 6, 3).with_padding(1));
  conv.enable_output_fusion();
  REQUIRE(conv.named_buffers().contains("fusion.matrix"));
  const torch::Tensor x = torch::randn({2, 3, 5, 5});
  // The identity until rows are set: plain slicing of the first channels.
  conv.set_active_channels(torch::arange(2), torch::tensor({0, 1, 3}));
  const torch::Tensor sliced_w = conv.weight.narrow(0, 0, 2).index_select(1, torch::tensor({0, 1, 3}));
  CHECK(torch::allclose(conv(x), torch::conv2d(x, sliced_w, conv.bias.narrow(0, 0, 2), 1, 1), 1e-5, 1e-6));

  const torch::Tensor m = torch::softmax(torch::randn({2, 6}), 1);
  conv.set_fusion_rows(m);
  const torch::Tensor columns = conv.weight.index_select(1, torch::tensor({0, 1, 3}));
  const torch::Tensor fused_w = m.mm(columns.flatten(1)).view({2, 3, 3, 3});
  const torch::Tensor expected = torch::conv2d(x, fused_w, m.mv(conv.bias), 1, 1);
  CHECK(torch::allclose(conv(x), expected, 1e-5, 1e-6));
  // Gradients reach every filter through the fusion.
  conv(x).sum().backward();
  CHECK(conv.weight.grad().narrow(0, 2, 4).abs().sum().item<double>() > 0);

  // Other active outputs than the first ones are an error; the static form bakes the fusion.
  CHECK_THROWS_WITH(conv.set_active_channels(torch::tensor({1, 2}), torch::Tensor()),
                    Catch::Contains("computes its first channels"));
  conv.set_active_channels(torch::arange(2), torch::tensor({0, 1, 3}));
  conv.make_static();
  CHECK(conv.options().out_channels == 2);
  CHECK(conv.options().in_channels == 3);
  CHECK(!conv.named_buffers().contains("fusion.matrix"));
  CHECK(torch::allclose(conv(x), expected, 1e-5, 1e-6));

  nn::Conv2d grouped(nn::Conv2dOptions(4, 4, 3).with_groups(2));
  CHECK_THROWS_WITH(grouped.enable_output_fusion(), Catch::Contains("groups = 1"));
}

TEST_CASE("DCFF on ResNet-20: units at their targets with fused filters, checkpointed, cut to an equal model",
          "[pruning][dcff]") {
  register_all();
  torch::manual_seed(0);
  const Json table = {{"type", "DCFF"},
                      {"architecture", test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)},
                      {"target_flops", 0.5},
                      {"mutator_cfg", {{"parse_cfg", {{"type", "ChannelAnalyzer"}, {"demo_input", {1, 1, 28, 28}}}}}}};
  auto dcff = std::dynamic_pointer_cast<DCFF>(test::build_model(table));
  REQUIRE(dcff);
  CHECK(dcff->mutator().options().unit_type == "DCFFChannelUnit");
  CHECK(dcff->prune_times(1000, 100) == 10);  // prune_times = 0: every step_freq to the end
  const auto state = dcff->named_buffers();
  REQUIRE(state.contains("architecture.backbone.layer2.0.conv1.fusion.matrix"));
  const torch::Tensor identity = state["architecture.backbone.layer2.0.conv1.fusion.matrix"].clone();
  CHECK(torch::equal(identity, torch::eye(32)));

  // The first step sets the target widths and fuses at temperature 1.
  auto params = dcff->parameters();
  auto optim = std::make_shared<OptimWrapper>(std::make_shared<torch::optim::SGD>(params, torch::optim::SGDOptions(0.01)),
                                             params);
  dcff->train();
  const Batch batch{torch::randn({8, 1, 28, 28}), torch::randint(10, {8}), torch::Tensor()};
  const LossMap losses = dcff->train_step(batch, *optim);
  CHECK(dcff->flops_ratio() <= 0.5);
  CHECK(dcff->flops_ratio() > 0.4);
  const auto& unit = dcff->mutator().unit("backbone.layer2.0.conv1_(0, 32)_32");
  CHECK(unit.width() < 32);
  const torch::Tensor fused = dcff->named_buffers()["architecture.backbone.layer2.0.conv1.fusion.matrix"];
  CHECK(!torch::equal(fused.narrow(0, 0, unit.width()), identity.narrow(0, 0, unit.width())));
  CHECK(torch::allclose(fused.narrow(0, 0, unit.width()).sum(1), torch::ones({unit.width()}), 1e-5));

  // The cut copy computes what the fused model computes.
  dcff->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({4, 1, 28, 28});
  const torch::Tensor dynamic = dcff->forward_tensor(x);
  const auto cut = dcff->static_architecture();
  CHECK(torch::allclose(cut->forward_tensor(x), dynamic, 1e-4, 1e-5));
  for (const auto& item : cut->named_buffers()) CHECK(item.key().find("fusion") == std::string::npos);
}
