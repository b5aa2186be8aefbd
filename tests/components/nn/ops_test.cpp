// Each op's forward against the LibTorch functional it wraps, and state-dict names against
// LibTorch's own modules (which match PyTorch's).
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <set>

#include "components/architectures/resnet.h"
#include "components/nn/nn.h"
#include "engine/error.h"

using namespace razor;

namespace {

bool close(const torch::Tensor& a, const torch::Tensor& b, double tol = 1e-5) {
  return a.sizes() == b.sizes() && torch::allclose(a, b, tol, tol);
}

std::set<std::string> state_keys(torch::nn::Module& module) {
  std::set<std::string> out;
  for (const auto& item : module.named_parameters()) out.insert(item.key());
  for (const auto& item : module.named_buffers()) out.insert(item.key());
  return out;
}

}  // namespace

TEST_CASE("Conv2d equals torch::conv2d with stride, padding, dilation and groups", "[nn]") {
  torch::manual_seed(0);
  nn::Conv2d conv(nn::Conv2dOptions(6, 9, 3).with_stride(2).with_padding(1).with_groups(3));
  REQUIRE(conv.weight.sizes() == torch::IntArrayRef({9, 2, 3, 3}));
  REQUIRE(conv.bias.defined());
  auto x = torch::randn({2, 6, 11, 10});
  CHECK(close(conv(x), torch::conv2d(x, conv.weight, conv.bias, 2, 1, 1, 3)));

  nn::Conv2d dilated(nn::Conv2dOptions(4, 4, 3).with_dilation(2).with_padding(2).with_bias(false));
  CHECK_FALSE(dilated.bias.defined());
  auto y = torch::randn({1, 4, 9, 9});
  CHECK(close(dilated(y), torch::conv2d(y, dilated.weight, {}, 1, 2, 2, 1)));

  // Depthwise, on a channels_last input.
  nn::Conv2d depthwise(nn::Conv2dOptions(8, 8, 3).with_padding(1).with_groups(8));
  auto z = torch::randn({2, 8, 7, 7}).contiguous(at::MemoryFormat::ChannelsLast);
  CHECK(close(depthwise(z),
              torch::conv2d(z.contiguous(), depthwise.weight, depthwise.bias, 1, 1, 1, 8)));

  CHECK(state_keys(conv) ==
        state_keys(*torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 9, 3).groups(3))));
  CHECK_THROWS_WITH(nn::Conv2d(nn::Conv2dOptions(6, 9, 3).with_groups(4)),
                    Catch::Contains("groups"));
}

TEST_CASE("Conv2d initialises weights Kaiming-normal with fan_out", "[nn]") {
  torch::manual_seed(1);
  nn::Conv2d conv(nn::Conv2dOptions(64, 256, 3));
  // std = sqrt(2 / fan_out), fan_out = 256 * 9.
  const double expected = std::sqrt(2.0 / (256 * 9));
  CHECK(conv.weight.std().item<double>() == Approx(expected).epsilon(0.02));
  CHECK(conv.bias.abs().sum().item<double>() == 0.0);
}

TEST_CASE("Linear equals torch::linear and has PyTorch's names", "[nn]") {
  torch::manual_seed(2);
  nn::Linear linear(7, 3);
  auto x = torch::randn({5, 7});
  CHECK(close(linear(x), torch::linear(x, linear.weight, linear.bias)));
  CHECK(state_keys(linear) == state_keys(*torch::nn::Linear(7, 3)));
  nn::Linear no_bias(7, 3, false);
  CHECK_FALSE(no_bias.bias.defined());
  CHECK(close(no_bias(x), x.matmul(no_bias.weight.t())));
}

TEST_CASE("BatchNorm2d updates running stats as torch::batch_norm and uses them in eval", "[nn]") {
  torch::manual_seed(3);
  nn::BatchNorm2d bn(4);
  CHECK(state_keys(bn) == state_keys(*torch::nn::BatchNorm2d(4)));
  CHECK(state_keys(bn) == std::set<std::string>{"weight", "bias", "running_mean", "running_var",
                                                "num_batches_tracked"});
  {
    torch::NoGradGuard no_grad;
    bn.weight.uniform_(0.5, 1.5);
    bn.bias.uniform_(-0.5, 0.5);
  }
  auto mean = torch::zeros({4}), var = torch::ones({4});
  for (int step = 0; step < 3; ++step) {
    auto x = torch::randn({8, 4, 5, 5}) * 2 + 1;
    auto expected = torch::batch_norm(x, bn.weight, bn.bias, mean, var, true, 0.1, 1e-5, false);
    CHECK(close(bn(x), expected));
  }
  CHECK(torch::allclose(bn.running_mean, mean));
  CHECK(torch::allclose(bn.running_var, var));
  CHECK(bn.num_batches_tracked.item<int64_t>() == 3);
  CHECK(bn.running_mean.abs().sum().item<double>() > 0.1);

  bn.eval();
  auto x = torch::randn({3, 4, 5, 5});
  auto manual = (x - mean.view({1, 4, 1, 1})) / torch::sqrt(var.view({1, 4, 1, 1}) + 1e-5) *
                    bn.weight.view({1, 4, 1, 1}) +
                bn.bias.view({1, 4, 1, 1});
  CHECK(close(bn(x), manual, 1e-4));
  CHECK(torch::allclose(bn.running_mean, mean));  // eval leaves the stats alone
  CHECK(bn.num_batches_tracked.item<int64_t>() == 3);

  // channels_last input.
  bn.train();
  auto y = torch::randn({4, 4, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast);
  auto m2 = bn.running_mean.clone(), v2 = bn.running_var.clone();
  auto expected =
      torch::batch_norm(y.contiguous(), bn.weight, bn.bias, m2, v2, true, 0.1, 1e-5, false);
  CHECK(close(bn(y), expected));
  CHECK(torch::allclose(bn.running_var, v2));
}

TEST_CASE("Activations equal their functionals", "[nn]") {
  auto x = torch::linspace(-8, 8, 97).reshape({1, 1, 97});
  CHECK(close(nn::ReLU()(x), torch::relu(x)));
  CHECK(close(nn::ReLU6()(x), torch::clamp(x, 0, 6)));
  CHECK(close(nn::Hardswish()(x), x * torch::clamp(x + 3, 0, 6) / 6));
  CHECK(close(nn::Hardsigmoid()(x), torch::clamp(x + 3, 0, 6) / 6));
  CHECK(close(nn::Sigmoid()(x), torch::sigmoid(x)));
  CHECK(close((*nn::make_activation("ReLU6"))(x), torch::clamp(x, 0, 6)));
  CHECK_THROWS_WITH(nn::make_activation("Relu6"), Catch::Contains("did you mean \"ReLU6\""));
}

TEST_CASE("Pooling, Flatten, Identity and Dropout equal their functionals", "[nn]") {
  torch::manual_seed(4);
  auto x = torch::randn({2, 3, 9, 8});
  nn::MaxPool2d max_pool(nn::Pool2dOptions(3).with_stride(2).with_padding(1));
  CHECK(close(max_pool(x), torch::max_pool2d(x, 3, 2, 1)));
  nn::MaxPool2d square(nn::Pool2dOptions(2));
  CHECK(square(x).sizes() == torch::IntArrayRef({2, 3, 4, 4}));
  nn::AvgPool2d avg_pool(
      nn::Pool2dOptions(3).with_stride(2).with_padding(1).with_count_include_pad(false));
  CHECK(close(avg_pool(x), torch::avg_pool2d(x, 3, 2, 1, false, false)));
  nn::AdaptiveAvgPool2d gap;
  CHECK(close(gap(x), x.mean({2, 3}, true)));
  nn::AdaptiveAvgPool2d grid(2, 3);
  CHECK(close(grid(x), torch::adaptive_avg_pool2d(x, {2, 3})));
  // A channels_last input gets its gradient (1 / HW everywhere) in channels_last.
  auto x_cl = x.contiguous(at::MemoryFormat::ChannelsLast).requires_grad_();
  const auto pooled = gap(x_cl);
  CHECK(close(pooled, x.mean({2, 3}, true)));
  const auto dx = torch::autograd::grad({pooled.sum()}, {x_cl})[0];
  CHECK(dx.is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(torch::allclose(dx, torch::full_like(x, 1.0 / 72)));

  nn::Flatten flatten;
  auto cl = x.contiguous(at::MemoryFormat::ChannelsLast);  // .view would fail on this
  CHECK(close(flatten(cl), x.reshape({2, -1})));
  CHECK(nn::Flatten(2)(x).sizes() == torch::IntArrayRef({2, 3, 72}));

  CHECK(torch::equal(nn::Identity()(x), x));

  nn::Dropout dropout(0.5);
  auto ones = torch::ones({1000});
  auto dropped = dropout(ones);
  const double zeros = (dropped == 0).sum().item<double>();
  CHECK(zeros > 350);
  CHECK(zeros < 650);
  CHECK(torch::allclose(dropped.masked_select(dropped != 0), torch::full({1}, 2.0)));
  dropout.eval();
  CHECK(torch::equal(dropout(ones), ones));
}

TEST_CASE("Add, Concat and Mul take a list of inputs", "[nn]") {
  auto a = torch::randn({2, 3, 4, 4}), b = torch::randn({2, 3, 4, 4}),
       c = torch::randn({2, 5, 4, 4});
  nn::Add add;
  CHECK(close(add({a, b}), a + b));
  CHECK(close(add({a, b, a}), a + b + a));
  nn::Concat concat;
  CHECK(close(concat({a, c}), torch::cat({a, c}, 1)));
  CHECK(close(nn::Concat(0)({a, b}), torch::cat({a, b}, 0)));
  nn::Mul mul;
  auto gate = torch::rand({2, 3, 1, 1});
  CHECK(close(mul({a, gate}), a * gate));
}

TEST_CASE("Sequential names its children 0, 1, ... and calls them in order", "[nn]") {
  torch::manual_seed(5);
  nn::Sequential seq;
  auto conv = seq.push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 3, 1)));
  seq.push_back(std::make_shared<nn::BatchNorm2d>(3));
  seq.push_back(std::make_shared<nn::ReLU>());
  CHECK(seq.size() == 3);
  CHECK(&seq.at<nn::Conv2d>(0) == conv.get());
  CHECK_THROWS(seq.at<nn::Linear>(1));
  CHECK(state_keys(seq) == std::set<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                                 "1.running_mean", "1.running_var",
                                                 "1.num_batches_tracked"});
  seq.eval();
  auto x = torch::randn({2, 2, 3, 3});
  auto& bn = seq.at<nn::BatchNorm2d>(1);
  auto expected =
      torch::relu(torch::batch_norm(torch::conv2d(x, conv->weight, conv->bias), bn.weight, bn.bias,
                                    bn.running_mean, bn.running_var, false, 0.1, 1e-5, false));
  CHECK(close(seq(x), expected));
}

TEST_CASE("ConvModule is conv -> bn -> activate with mmcv's names", "[nn]") {
  nn::ConvModule block(nn::ConvModuleOptions(3, 8, 3).with_padding(1).with_activation("ReLU6"));
  CHECK(state_keys(block).count("conv.weight") == 1);
  CHECK(state_keys(block).count("conv.bias") == 0);  // bias only without a norm
  CHECK(state_keys(block).count("bn.running_var") == 1);
  CHECK(block.activate() != nullptr);
  block.eval();
  auto x = torch::randn({1, 3, 5, 5}) * 4;
  auto& bn = *block.bn();
  auto expected = torch::clamp(
      torch::batch_norm(torch::conv2d(x, block.conv().weight, {}, 1, 1), bn.weight, bn.bias,
                        bn.running_mean, bn.running_var, false, 0.1, 1e-5, false),
      0, 6);
  CHECK(close(block(x), expected));
  // Eval mode folds the BN into the conv; with a hook on the BN it runs the three ops.
  nn::ConvModule relu_block(nn::ConvModuleOptions(3, 8, 3).with_padding(1));
  auto& rbn = *relu_block.bn();
  {
    torch::NoGradGuard no_grad;
    rbn.running_mean.uniform_(-1, 1), rbn.running_var.uniform_(0.5, 2);
    rbn.weight.uniform_(0.5, 1.5), rbn.bias.uniform_(-0.5, 0.5);
  }
  relu_block.eval();
  auto relu_expected = torch::relu(torch::batch_norm(torch::conv2d(x, relu_block.conv().weight, {}, 1, 1), rbn.weight,
                                                     rbn.bias, rbn.running_mean, rbn.running_var, false, 0.1, 1e-5,
                                                     false));
  CHECK(close(relu_block(x), relu_expected));
  {
    torch::NoGradGuard no_grad;
    CHECK(close(relu_block(x), relu_expected));
  }
  torch::Tensor seen;
  const auto handle = rbn.add_forward_hook([&](nn::Module&, const nn::Inputs&, torch::Tensor& out) { seen = out; });
  CHECK(close(relu_block(x), relu_expected));
  REQUIRE(seen.defined());  // the BN ran, and the in-place ReLU left its output alone
  CHECK(close(seen, torch::batch_norm(torch::conv2d(x, relu_block.conv().weight, {}, 1, 1), rbn.weight, rbn.bias,
                                      rbn.running_mean, rbn.running_var, false, 0.1, 1e-5, false)));
  // Training mode (the ReLU in place on the BN's output): the gradients of the plain ops.
  nn::ConvModule train_block(nn::ConvModuleOptions(3, 8, 3).with_padding(1));
  train_block.train();
  auto& tconv = train_block.conv();
  auto& tbn = *train_block.bn();
  auto xin = x.clone().requires_grad_();
  const auto out = train_block(xin);
  const auto plain = torch::relu(torch::batch_norm(torch::conv2d(xin, tconv.weight, {}, 1, 1), tbn.weight, tbn.bias,
                                                   torch::Tensor(), torch::Tensor(), true, 0.1, 1e-5, false));
  CHECK(close(out, plain));
  const auto dout = torch::randn_like(out);
  const auto got = torch::autograd::grad({out}, {xin, tconv.weight, tbn.weight, tbn.bias}, {dout});
  const auto want = torch::autograd::grad({plain}, {xin, tconv.weight, tbn.weight, tbn.bias}, {dout});
  for (size_t i = 0; i < got.size(); ++i) CHECK(close(got[i], want[i], 1e-4));

  nn::ConvModule linear(nn::ConvModuleOptions(3, 8, 1).with_norm(false).with_activation(""));
  CHECK(linear.bn() == nullptr);
  CHECK(linear.activate() == nullptr);
  CHECK(linear.conv().bias.defined());
}

TEST_CASE("sync_batch_norm on one rank equals torch::batch_norm, forward and backward", "[nn][dist]") {
  torch::manual_seed(0);
  const auto x = torch::randn({8, 4, 5, 5}).mul(3).add(1).requires_grad_();
  const auto w = torch::rand({4}).add(0.5).requires_grad_();
  const auto b = torch::rand({4}).requires_grad_();
  const auto dy = torch::randn({8, 4, 5, 5});
  auto mean_ref = torch::zeros({4}), var_ref = torch::ones({4});
  auto y_ref = torch::batch_norm(x, w, b, mean_ref, var_ref, true, 0.1, 1e-5, false);
  const auto grads_ref = torch::autograd::grad({y_ref}, {x, w, b}, {dy});

  auto mean = torch::zeros({4}), var = torch::ones({4});
  auto y = nn::sync_batch_norm(x, w, b, mean, var, 1e-5, 0.1);
  const auto grads = torch::autograd::grad({y}, {x, w, b}, {dy});
  CHECK(close(y, y_ref));
  CHECK(close(mean, mean_ref));
  CHECK(close(var, var_ref));
  for (size_t i = 0; i < 3; ++i) {
    INFO("gradient " << i << ": " << (grads[i] - grads_ref[i]).norm().item<double>() / grads_ref[i].norm().item<double>());
    CHECK(close(grads[i], grads_ref[i], 1e-5));
  }
}

TEST_CASE("a ResNet with SyncBatchNorm on one rank has the gradients of plain BatchNorm", "[nn][dist]") {
  auto run = [](bool sync) {
    torch::manual_seed(0);
    auto holder = std::make_shared<ResNet>(ResNetOptions::cifar(8).with_in_channels(1));
    ResNet& net = *holder;
    for (auto& module : net.modules()) {
      if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(module.get())) bn->set_sync_across_ranks(sync);
    }
    net.train();
    torch::manual_seed(1);
    const auto x = torch::randn({16, 1, 32, 32});
    net(x).pow(2).mean().backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : net.parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto plain = run(false);
  const auto synced = run(true);
  REQUIRE(plain.size() == synced.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    INFO("parameter " << i << ": "
                      << (plain[i] - synced[i]).norm().item<double>() / plain[i].norm().item<double>());
    CHECK((plain[i] - synced[i]).norm().item<double>() <= 1e-5 * plain[i].norm().item<double>());
  }
}
