// Dynamic width: Conv2d (plain, depthwise, grouped), Linear and BatchNorm2d computing with a
// slice of their channels, against plain LibTorch on the sliced weights; BN statistics
// written back through the active channels; the static form (make_static) equal to the
// dynamic op; the estimator counting the active widths; bad indices.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/estimators/resource_estimator.h"
#include "components/nn/nn.h"
#include "tests/components/nn/trained_bn.h"
#include "components/quant/quant.h"

using namespace razor;
using razor::test::trained_bn;

namespace {

torch::Tensor idx(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

}  // namespace

TEST_CASE("A dynamic conv slices its weight: plain, depthwise and grouped", "[nn][dynamic]") {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  {
    nn::Conv2d conv(nn::Conv2dOptions(5, 6, 3).with_padding(1));
    conv.bias.copy_(torch::randn({6}));
    const auto out = idx({0, 2, 3}), in = idx({1, 2, 4});
    conv.set_active_channels(out, in);
    const auto x = torch::randn({2, 3, 7, 7});  // the producer is narrowed too
    const auto expected = torch::conv2d(x, conv.weight.index_select(0, out).index_select(1, in),
                                        conv.bias.index_select(0, out), 1, 1);
    CHECK(torch::allclose(conv(x), expected, 1e-5, 1e-6));
    CHECK(conv.weight.sizes() == torch::IntArrayRef({6, 5, 3, 3}));  // nothing cut yet

    // The static form computes the same with a smaller weight.
    conv.make_static();
    CHECK(conv.weight.sizes() == torch::IntArrayRef({3, 3, 3, 3}));
    CHECK(conv.options().in_channels == 3);
    CHECK(conv.options().out_channels == 3);
    CHECK_FALSE(conv.has_active_channels());
    CHECK(torch::allclose(conv(x), expected, 1e-5, 1e-6));
  }
  {
    // Depthwise: its groups follow the width.
    nn::Conv2d dw(nn::Conv2dOptions(6, 6, 3).with_padding(1).with_groups(6));
    const auto active = idx({1, 3, 4});
    dw.set_active_channels(active, {});
    const auto x = torch::randn({1, 3, 5, 5});
    const auto expected = torch::conv2d(x, dw.weight.index_select(0, active), dw.bias.index_select(0, active), 1, 1,
                                        1, /*groups=*/3);
    CHECK(torch::allclose(dw(x), expected, 1e-5, 1e-6));
    dw.make_static();
    CHECK(dw.options().groups == 3);
    CHECK(dw.options().in_channels == 3);
    CHECK(dw.weight.sizes() == torch::IntArrayRef({3, 1, 3, 3}));
    CHECK(torch::allclose(dw(x), expected, 1e-5, 1e-6));
  }
  {
    // Grouped (2 groups of 4 inputs, 6 outputs): the same channels kept in every group.
    nn::Conv2d grouped(nn::Conv2dOptions(8, 12, 3).with_padding(1).with_groups(2));
    const auto out = idx({1, 4, 7, 10}), in = idx({0, 2, 4, 6});
    grouped.set_active_channels(out, in);
    const auto x = torch::randn({1, 4, 5, 5});
    const auto expected = torch::conv2d(x, grouped.weight.index_select(0, out).index_select(1, idx({0, 2})),
                                        grouped.bias.index_select(0, out), 1, 1, 1, /*groups=*/2);
    CHECK(torch::allclose(grouped(x), expected, 1e-5, 1e-6));
    grouped.make_static();
    CHECK(grouped.options().in_channels == 4);
    CHECK(grouped.options().out_channels == 4);
    CHECK(grouped.options().groups == 2);
    CHECK(torch::allclose(grouped(x), expected, 1e-5, 1e-6));
  }
}

TEST_CASE("A dynamic linear slices its features, a folded BN and a mask follow the slice", "[nn][dynamic]") {
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  nn::Linear fc(6, 4);
  const auto out = idx({1, 3}), in = idx({0, 1, 5});
  fc.set_active_channels(out, in);
  const auto x = torch::randn({3, 3});
  const auto expected =
      torch::linear(x, fc.weight.index_select(0, out).index_select(1, in), fc.bias.index_select(0, out));
  CHECK(torch::allclose(fc(x), expected, 1e-6, 1e-6));

  // conv -> BN folded for good (eval), masked: the slice of the folded weight, then the mask.
  nn::Conv2d conv(nn::Conv2dOptions(3, 5, 1).with_bias(false));
  auto bn = trained_bn(5);
  bn->eval();
  conv.fold_bn(bn);
  conv.set_out_channel_mask(torch::tensor({1.0f, 1.0f, 0.0f, 1.0f, 1.0f}));
  const auto active = idx({0, 2, 4});
  conv.set_active_channels(active, {});
  bn->set_active_channels(active, {});
  const auto xc = torch::randn({2, 3, 4, 4});
  const auto [w, b] = nn::fold_bn_into(conv.weight, torch::Tensor(), bn.get());
  const auto mask = torch::tensor({1.0f, 0.0f, 1.0f}).view({3, 1, 1, 1});
  const auto expected_c = torch::conv2d(xc, w.index_select(0, active) * mask, b.index_select(0, active) * mask.view({3}));
  CHECK(torch::allclose((*bn)(conv(xc)), expected_c, 1e-5, 1e-5));
  const auto deployed = conv.deployed_weight(bn.get());
  CHECK(torch::allclose(deployed.first, w.index_select(0, active) * mask, 1e-6, 1e-6));
}

TEST_CASE("A dynamic BatchNorm normalises the active channels and writes their statistics back",
          "[nn][dynamic]") {
  torch::manual_seed(2);
  auto bn = trained_bn(5);
  const auto active = idx({0, 3, 4});
  bn->set_active_channels(active, {});
  const auto before_mean = bn->running_mean.clone(), before_var = bn->running_var.clone();
  const auto x = torch::randn({4, 3, 3, 3});
  auto mean = before_mean.index_select(0, active), var = before_var.index_select(0, active);
  const auto expected = torch::batch_norm(x, bn->weight.index_select(0, active), bn->bias.index_select(0, active), mean,
                                          var, /*training=*/true, 0.1, 1e-5, false);
  bn->train();
  CHECK(torch::allclose((*bn)(x), expected, 1e-5, 1e-5));
  // Active channels updated as the kernel updated the slice; the others untouched.
  CHECK(torch::allclose(bn->running_mean.index_select(0, active), mean));
  CHECK(torch::allclose(bn->running_var.index_select(0, active), var));
  CHECK(torch::equal(bn->running_mean.index_select(0, idx({1, 2})), before_mean.index_select(0, idx({1, 2}))));
  CHECK_FALSE(torch::equal(bn->running_mean, before_mean));

  bn->eval();
  const auto eval_expected =
      torch::batch_norm(x, bn->weight.index_select(0, active), bn->bias.index_select(0, active),
                        bn->running_mean.index_select(0, active), bn->running_var.index_select(0, active), false, 0.1,
                        1e-5, false);
  CHECK(torch::allclose((*bn)(x), eval_expected, 1e-5, 1e-5));
  bn->make_static();
  CHECK(bn->num_features() == 3);
  CHECK(bn->running_var.sizes() == torch::IntArrayRef({3}));
  CHECK(torch::allclose((*bn)(x), eval_expected, 1e-5, 1e-5));
}

TEST_CASE("The estimator counts the active widths, depthwise groups included", "[nn][dynamic][estimator]") {
  // conv 3->8 (3x3) -> depthwise 8 (3x3) -> conv 8->4 (1x1), no biases, on 1 x 3 x 6 x 6.
  struct Net : nn::Module {
    Net() : nn::Module("Net") {
      a = register_module("a", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 8, 3).with_padding(1).with_bias(false)));
      dw = register_module("dw", std::make_shared<nn::Conv2d>(
                                     nn::Conv2dOptions(8, 8, 3).with_padding(1).with_groups(8).with_bias(false)));
      b = register_module("b", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(8, 4, 1).with_bias(false)));
      nn::assign_paths(*this);
    }
    torch::Tensor forward(const torch::Tensor& x) override { return (*b)((*dw)((*a)(x))); }
    std::shared_ptr<nn::Conv2d> a, dw, b;
  } net;
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 3, 6, 6}).with_units(""));
  auto flops = [&] { return estimator.estimate_report(net, [&](const torch::Tensor& x) { return net(x); }).totals.flops; };
  // Full: 9*3*8*36 + 9*8*(8/8)*36 + 8*4*36.
  CHECK(flops() == Approx(7776 + 2592 + 1152));
  const auto kept = idx({0, 1, 5});
  net.a->set_active_channels(kept, {});
  net.dw->set_active_channels(kept, kept);
  net.b->set_active_channels({}, kept);
  // At 3 of 8: 9*3*3*36 + 9*3*(3/3)*36 + 3*4*36 (MMRazor's static groups would give 9*3*3/8*36).
  CHECK(flops() == Approx(2916 + 972 + 432));
  const auto params = estimator.estimate_report(net, [&](const torch::Tensor& x) { return net(x); }).totals.params;
  CHECK(params == Approx(81 + 27 + 12));
}

TEST_CASE("Active channels are checked", "[nn][dynamic]") {
  nn::Conv2d conv(nn::Conv2dOptions(4, 6, 1));
  CHECK_THROWS_WITH(conv.set_active_channels(idx({0, 6}), {}), Catch::Contains("outside [0, 6)"));
  CHECK_THROWS_WITH(conv.set_active_channels(idx({2, 1}), {}), Catch::Contains("ascending and unique"));
  CHECK_THROWS_WITH(conv.set_active_channels(torch::zeros({0}, torch::kLong), {}),
                    Catch::Contains("at least one channel"));
  CHECK_THROWS_WITH(conv.set_active_channels(torch::tensor({0.0f}), {}), Catch::Contains("1-D int64"));
  nn::Conv2d grouped(nn::Conv2dOptions(8, 8, 1).with_groups(2));
  CHECK_THROWS_WITH(grouped.set_active_channels({}, idx({0, 1, 4})), Catch::Contains("as many input channels"));
  nn::Conv2d dw(nn::Conv2dOptions(4, 4, 3).with_groups(4));
  CHECK_THROWS_WITH(dw.set_active_channels(idx({0, 1}), idx({0, 2})), Catch::Contains("one set"));
  nn::BatchNorm2d bn(4);
  CHECK_THROWS_WITH(bn.set_active_channels(idx({0, 1}), idx({1, 2})), Catch::Contains("one set"));

  // With a weight fake quantiser (whose per-channel state has the full width): cut first.
  nn::Conv2d quantised(nn::Conv2dOptions(4, 6, 1));
  const auto q = quant::QConfig::parse(Json::parse(R"({
    "w_observer": {"type": "PerChannelMinMaxObserver"}, "a_observer": {"type": "MinMaxObserver"},
    "w_fake_quant": {"type": "FakeQuantize"}, "a_fake_quant": {"type": "FakeQuantize"},
    "w_qscheme": {"qdtype": "qint8", "bit": 8, "is_symmetry": true, "is_symmetric_range": true},
    "a_qscheme": {"qdtype": "quint8", "bit": 8, "is_symmetry": true}})"));
  quantised.set_weight_fake_quant(q.build_weight_fake_quant(6));
  CHECK_THROWS_WITH(quantised.set_active_channels(idx({0, 1}), {}), Catch::Contains("make_static"));
}
