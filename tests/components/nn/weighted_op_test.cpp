// The effective-weight step of Conv2d and Linear: BN folding (simulated and for good), the
// channel mask and the weight fake quantiser, each against plain LibTorch.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/nn/nn.h"
#include "tests/components/nn/trained_bn.h"
#include "components/nn/weighted_op.h"
#include "components/quant/quant.h"

using namespace razor;
using razor::test::trained_bn;

namespace {

}  // namespace

TEST_CASE("fold_bn_into: the folded conv equals conv -> BN in eval mode", "[nn][fold]") {
  torch::manual_seed(0);
  for (const bool with_bias : {false, true}) {
    nn::Conv2d conv(nn::Conv2dOptions(3, 8, 3).with_padding(1).with_bias(with_bias));
    if (with_bias) {
      torch::NoGradGuard g;
      conv.bias.copy_(torch::randn({8}));
    }
    auto bn = trained_bn(8);
    bn->eval();
    const auto x = torch::randn({2, 3, 9, 9});
    const auto expected = (*bn)(conv(x));
    const auto [w, b] = nn::fold_bn_into(conv.weight, conv.bias, bn.get());
    const auto folded = torch::conv2d(x, w, b, 1, 1);
    CHECK(torch::allclose(folded, expected, 1e-5, 1e-5));
  }
}

TEST_CASE("BN folding, simulated in training and for good in eval, leaves conv -> BN unchanged", "[nn][fold]") {
  torch::manual_seed(1);
  nn::Conv2d plain(nn::Conv2dOptions(4, 6, 3).with_bias(false));
  nn::Conv2d folded(nn::Conv2dOptions(4, 6, 3).with_bias(false));
  {
    torch::NoGradGuard g;
    folded.weight.copy_(plain.weight);
  }
  auto bn_a = trained_bn(6);
  auto bn_b = std::make_shared<nn::BatchNorm2d>(6);
  {
    torch::NoGradGuard g;
    bn_b->weight.copy_(bn_a->weight);
    bn_b->bias.copy_(bn_a->bias);
    bn_b->running_mean.copy_(bn_a->running_mean);
    bn_b->running_var.copy_(bn_a->running_var);
  }
  folded.fold_bn(bn_b);
  const auto x = torch::randn({3, 4, 7, 7});
  for (const bool training : {true, false}) {
    bn_a->train(training);
    bn_b->train(training);
    const auto expected = (*bn_a)(plain(x));
    const auto got = (*bn_b)(folded(x));
    CHECK(torch::allclose(got, expected, 1e-4, 1e-5));
  }
  // A BN of another width does not fold.
  CHECK_THROWS_WITH(folded.fold_bn(std::make_shared<nn::BatchNorm2d>(5)),
                    Catch::Contains("cannot fold a BatchNorm of 5 features into an op of 6 output channels"));
}

TEST_CASE("The channel mask zeroes whole output channels of the weight and bias", "[nn]") {
  torch::manual_seed(2);
  nn::Linear fc(5, 4);
  const auto x = torch::randn({3, 5});
  const auto mask = torch::tensor({1.f, 0.f, 1.f, 0.f});
  fc.set_out_channel_mask(mask);
  const auto expected = torch::linear(x, fc.weight * mask.view({4, 1}), fc.bias * mask);
  CHECK(torch::allclose(fc(x), expected));
  CHECK(fc(x).index({torch::indexing::Slice(), 1}).abs().max().item<float>() == 0.f);
  CHECK_THROWS_WITH(fc.set_out_channel_mask(torch::ones({3})), Catch::Contains("must have shape [4]"));
}

TEST_CASE("The weight fake quantiser acts on the BN-folded weight, as torch's ConvBn2d", "[nn][quant]") {
  torch::manual_seed(3);
  nn::Conv2d conv(nn::Conv2dOptions(2, 4, 3).with_bias(false));
  auto bn = trained_bn(4);
  conv.fold_bn(bn);
  const auto q = quant::QConfig::parse(Json::parse(R"({
    "w_observer": {"type": "PerChannelMinMaxObserver"}, "a_observer": {"type": "MinMaxObserver"},
    "w_fake_quant": {"type": "FakeQuantize"}, "a_fake_quant": {"type": "FakeQuantize"},
    "w_qscheme": {"qdtype": "qint8", "bit": 8, "is_symmetry": true, "is_symmetric_range": true},
    "a_qscheme": {"qdtype": "quint8", "bit": 8, "is_symmetry": true}})"));
  auto fq = q.build_weight_fake_quant(4);
  conv.set_weight_fake_quant(fq);
  const auto x = torch::randn({1, 2, 6, 6});
  bn->train();
  const auto y_train = conv(x);
  bn->eval();
  const auto y_eval = conv(x);
  const auto out_eval = (*bn)(y_eval);

  // By hand: factor = gamma / sigma; w' = w * factor; scale = max|w'| / 127 per channel.
  torch::NoGradGuard no_grad;
  const auto factor = bn->weight / torch::sqrt(bn->running_var + bn->eps());
  const auto w = conv.weight * factor.view({4, 1, 1, 1});
  const auto scale = std::get<0>(w.abs().reshape({4, -1}).max(1)) / 127.0;
  const auto wq = torch::fake_quantize_per_channel_affine(w, scale, torch::zeros({4}, torch::kInt), 0, -127, 127);
  CHECK(torch::allclose(fq->scale(), scale.to(torch::kFloat)));
  // Training (simulated folding): the fold divided out again, for the BN's batch statistics.
  CHECK(torch::allclose(y_train, torch::conv2d(x, wq) / factor.view({1, 4, 1, 1}), 1e-5, 1e-5));
  // Eval: folded for good, the deployed form; the BN passes the op's output through.
  const auto folded_bias = bn->bias - bn->running_mean * factor;
  CHECK(torch::allclose(y_eval, torch::conv2d(x, wq, folded_bias), 1e-5, 1e-5));
  CHECK(torch::equal(out_eval, y_eval));
  // Fake quant off: conv -> BN of the float weights again.
  fq->disable_fake_quant();
  const auto expected = torch::batch_norm(torch::conv2d(x, conv.weight), bn->weight, bn->bias, bn->running_mean,
                                          bn->running_var, false, 0.1, bn->eps(), false);
  CHECK(torch::allclose((*bn)(conv(x)), expected, 1e-5, 1e-5));
  // Unfolded, the BN normalises again.
  conv.fold_bn(nullptr);
  CHECK(torch::allclose((*bn)(conv(x)), expected, 1e-5, 1e-5));
}
