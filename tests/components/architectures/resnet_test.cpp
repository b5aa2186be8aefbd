// ResNet (CIFAR and ImageNet layouts): structure, names, hooks, parameter counts, shapes.
#include "components/architectures/resnet.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <set>
#include <sstream>

#include "components/architectures/image_classifier.h"
#include "components/nn/module.h"
#include "tests/components/architectures/build.h"

using namespace razor;
using razor::test::build_model;
using razor::test::classifier;
using razor::test::num_parameters;

namespace {

Json cifar_backbone(int64_t depth, int64_t in_channels = 1) {
  return Json{{"type", "ResNet_CIFAR"}, {"depth", depth}, {"in_channels", in_channels}};
}

std::shared_ptr<ImageClassifier> resnet_cifar(int64_t depth) {
  auto model = std::dynamic_pointer_cast<ImageClassifier>(
      build_model(classifier(cifar_backbone(depth), 64)));
  REQUIRE(model);
  return model;
}

torch::Tensor param(torch::nn::Module& model, const std::string& name) {
  auto params = model.named_parameters();
  auto buffers = model.named_buffers();
  if (auto* p = params.find(name)) return *p;
  if (auto* b = buffers.find(name)) return *b;
  FAIL("no parameter or buffer " << name);
  return {};
}

torch::Tensor eval_bn(torch::nn::Module& model, const std::string& prefix, const torch::Tensor& x) {
  return torch::batch_norm(x, param(model, prefix + ".weight"), param(model, prefix + ".bias"),
                           param(model, prefix + ".running_mean"),
                           param(model, prefix + ".running_var"), false, 0.1, 1e-5, false);
}

/// The CIFAR ResNet's state-dict keys, written out from BENCHMARKS.md's definition.
std::set<std::string> expected_cifar_keys(int64_t depth) {
  std::set<std::string> keys;
  auto bn = [&](const std::string& p) {
    for (const char* s : {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}) {
      keys.insert(p + "." + s);
    }
  };
  keys.insert("backbone.conv1.weight");
  bn("backbone.bn1");
  const int64_t n = (depth - 2) / 6;
  for (int stage = 0; stage < 3; ++stage) {
    for (int64_t b = 0; b < n; ++b) {
      const std::string p = "backbone.layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      keys.insert(p + ".conv1.weight");
      bn(p + ".bn1");
      keys.insert(p + ".conv2.weight");
      bn(p + ".bn2");
      if (stage > 0 && b == 0) {
        keys.insert(p + ".downsample.0.weight");
        bn(p + ".downsample.1");
      }
    }
  }
  keys.insert("head.fc.weight");
  keys.insert("head.fc.bias");
  return keys;
}

}  // namespace

TEST_CASE("ResNet-20 has the parameters of the CIFAR definition", "[architectures]") {
  // conv3x3(1->16)+BN; 3 stages of 3 BasicBlocks at 16/32/64 channels, 1x1 conv+BN
  // shortcuts where stride or width change; Linear(64->10).
  auto conv = [](int64_t in, int64_t out, int64_t k) { return in * out * k * k; };
  auto bn = [](int64_t c) { return 2 * c; };
  int64_t expected = conv(1, 16, 3) + bn(16);
  int64_t in = 16;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out = 16 << stage;
    for (int b = 0; b < 3; ++b) {
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      expected += conv(in, out, 3) + bn(out) + conv(out, out, 3) + bn(out);
      if (stride != 1 || in != out) expected += conv(in, out, 1) + bn(out);
      in = out;
    }
  }
  expected += 64 * 10 + 10;
  CHECK(expected == 272186);
  auto model = resnet_cifar(20);
  CHECK(num_parameters(*model) == expected);

  std::set<std::string> keys;
  for (const auto& item : model->named_parameters()) keys.insert(item.key());
  for (const auto& item : model->named_buffers()) keys.insert(item.key());
  CHECK(keys == expected_cifar_keys(20));
  CHECK(keys.count("backbone.layer1.0.bn1.running_mean") == 1);
  CHECK(keys.count("head.fc.weight") == 1);

  std::ostringstream printed;
  printed << *model;
  CHECK_THAT(
      printed.str(),
      Catch::Contains("(conv1): Conv2d(1, 16, kernel_size=3, stride=1, padding=1, bias=false)") &&
          Catch::Contains("(layer1): Sequential") && Catch::Contains("(add): Add"));
  CHECK_THAT(
      test::error_of([&] { nn::find_module(*model, "backbone.layer1.0.conv"); }),
      Catch::Contains("backbone.layer1.0.conv1") && Catch::Contains("backbone.layer1.0.conv2"));
}

TEST_CASE("A hook on backbone.layer1.0.conv1 sees what plain LibTorch computes",
          "[architectures]") {
  torch::manual_seed(0);
  auto model = resnet_cifar(20);
  // One training step's worth of BN statistics, so eval mode uses non-trivial ones.
  model->train();
  {
    torch::NoGradGuard no_grad;
    model->forward_tensor(torch::randn({16, 1, 28, 28}) * 2 + 0.5);
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.01);
  }
  model->eval();
  auto& conv1 = nn::find_module(*model, "backbone.layer1.0.conv1");
  CHECK(conv1.path() == "backbone.layer1.0.conv1");
  torch::Tensor seen_in, seen_out;
  int calls = 0;
  auto handle =
      conv1.add_forward_hook([&](nn::Module&, const nn::Inputs& inputs, torch::Tensor& output) {
        seen_in = inputs.at(0);
        seen_out = output;
        ++calls;
      });
  auto x = torch::randn({3, 1, 28, 28});
  torch::NoGradGuard no_grad;
  auto logits = model->forward_tensor(x);
  CHECK(logits.sizes() == torch::IntArrayRef({3, 10}));
  REQUIRE(calls == 1);

  auto stem = torch::relu(eval_bn(
      *model, "backbone.bn1", torch::conv2d(x, param(*model, "backbone.conv1.weight"), {}, 1, 1)));
  CHECK(torch::allclose(seen_in, stem, 1e-5, 1e-6));
  auto expected = torch::conv2d(seen_in, param(*model, "backbone.layer1.0.conv1.weight"), {}, 1, 1);
  CHECK(torch::allclose(seen_out, expected, 1e-5, 1e-6));

  // The block's single relu runs twice per forward.
  int relu_calls = 0;
  nn::find_module(*model, "backbone.layer1.0.relu")
      .add_forward_hook([&](nn::Module&, const nn::Inputs&, torch::Tensor&) { ++relu_calls; });
  handle.remove();
  model->forward_tensor(x);
  CHECK(relu_calls == 2);
  CHECK(calls == 1);
}

TEST_CASE("A whole ResNet-8 forward equals plain LibTorch functionals", "[architectures]") {
  torch::manual_seed(1);
  auto model = resnet_cifar(8);
  model->eval();
  auto x = torch::randn({2, 1, 12, 12});
  auto& m = *model;
  auto conv = [&](const torch::Tensor& t, const std::string& name, int64_t stride, int64_t pad) {
    return torch::conv2d(t, param(m, name + ".weight"), {}, stride, pad);
  };
  auto h = torch::relu(eval_bn(m, "backbone.bn1", conv(x, "backbone.conv1", 1, 1)));
  for (int stage = 0; stage < 3; ++stage) {
    const std::string p = "backbone.layer" + std::to_string(stage + 1) + ".0";
    const int64_t stride = stage == 0 ? 1 : 2;
    auto out = torch::relu(eval_bn(m, p + ".bn1", conv(h, p + ".conv1", stride, 1)));
    out = eval_bn(m, p + ".bn2", conv(out, p + ".conv2", 1, 1));
    auto identity =
        stage == 0 ? h : eval_bn(m, p + ".downsample.1", conv(h, p + ".downsample.0", stride, 0));
    h = torch::relu(out + identity);
  }
  auto logits = torch::linear(h.mean({2, 3}), param(m, "head.fc.weight"), param(m, "head.fc.bias"));
  torch::NoGradGuard no_grad;
  CHECK(torch::allclose(model->forward_tensor(x), logits, 1e-4, 1e-5));
}

TEST_CASE("ResNet_CIFAR output shapes for depths 8, 20, 32 and base_channels", "[architectures]") {
  for (int64_t depth : {8, 20, 32}) {
    auto model = resnet_cifar(depth);
    auto& backbone = dynamic_cast<ResNet&>(model->backbone());
    CHECK(backbone.num_stages() == 3);
    CHECK(backbone.layer(0).size() == static_cast<size_t>((depth - 2) / 6));
    auto x = torch::randn({2, 1, 28, 28});
    CHECK(model->backbone()(x).sizes() == torch::IntArrayRef({2, 64, 7, 7}));
    CHECK(model->forward_tensor(x).sizes() == torch::IntArrayRef({2, 10}));
  }
  Json narrow = {{"type", "ResNet_CIFAR"}, {"depth", 8}, {"in_channels", 3}, {"base_channels", 8}};
  auto model = build_model(classifier(narrow, 32, 4));
  auto out = std::dynamic_pointer_cast<Model>(model)->forward_tensor(torch::randn({1, 3, 16, 16}));
  CHECK(out.sizes() == torch::IntArrayRef({1, 4}));
}

TEST_CASE("ImageNet ResNet-18 and ResNet-50 match torchvision's sizes", "[architectures]") {
  Json r18 = {{"type", "ResNet"}, {"depth", 18}};
  auto model18 =
      std::dynamic_pointer_cast<ImageClassifier>(build_model(classifier(r18, 512, 1000)));
  REQUIRE(model18);
  CHECK(num_parameters(*model18) == 11689512);  // torchvision resnet18
  auto x = torch::randn({2, 3, 32, 32});
  CHECK(model18->backbone()(x).sizes() == torch::IntArrayRef({2, 512, 1, 1}));
  CHECK(model18->forward_tensor(x).sizes() == torch::IntArrayRef({2, 1000}));
  CHECK_NOTHROW(nn::find_module(*model18, "backbone.maxpool"));
  CHECK_NOTHROW(nn::find_module(*model18, "backbone.layer4.1.add"));

  Json r50 = {{"type", "ResNet"}, {"depth", 50}, {"in_channels", 1}};
  auto model50 = std::dynamic_pointer_cast<ImageClassifier>(build_model(classifier(r50, 2048, 10)));
  REQUIRE(model50);
  // torchvision resnet50 has 25,557,032 with 3 input channels and 1000 classes.
  CHECK(num_parameters(*model50) == 25557032 - 2 * 64 * 49 - 2048 * 990 - 990);
  auto y = torch::randn({1, 1, 32, 32});
  CHECK(model50->backbone()(y).sizes() == torch::IntArrayRef({1, 2048, 1, 1}));
  CHECK(nn::find_module(*model50, "backbone.layer1.0.conv3").path() == "backbone.layer1.0.conv3");
  CHECK_NOTHROW(nn::find_module(*model50, "backbone.layer1.0.downsample.0"));
}

TEST_CASE("zero_init_residual zeroes the last BN of every block", "[architectures]") {
  Json backbone = {{"type", "ResNet_CIFAR"}, {"depth", 8}, {"zero_init_residual", true}};
  auto model = build_model(classifier(backbone, 64));
  CHECK(param(*model, "backbone.layer2.0.bn2.weight").abs().sum().item<double>() == 0.0);
  CHECK(param(*model, "backbone.layer2.0.bn1.weight").abs().sum().item<double>() == 32.0);
}

TEST_CASE("A bad depth is a config error naming the key and the allowed values",
          "[architectures]") {
  auto cifar = test::error_of([] { build_model(classifier(cifar_backbone(21), 64)); });
  CHECK_THAT(cifar, Catch::Contains("model.backbone.depth") && Catch::Contains("6n+2") &&
                        Catch::Contains("21"));
  Json r19 = {{"type", "ResNet"}, {"depth", 19}};
  auto imagenet = test::error_of([&] { build_model(classifier(r19, 512)); });
  CHECK_THAT(imagenet,
             Catch::Contains("model.backbone.depth") && Catch::Contains("18, 34, 50, 101, 152"));
  // A config error (exit code 2), not a runtime failure.
  try {
    build_model(classifier(cifar_backbone(21), 64));
    FAIL("a ResNet_CIFAR of depth 21 was built");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains("model.backbone.depth") && Catch::Contains("21"));
  }
  Json typo = {{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channel", 1}};
  CHECK_THAT(test::error_of([&] { build_model(classifier(typo, 64)); }),
             Catch::Contains("model.backbone.in_channel") &&
                 Catch::Contains("did you mean \"in_channels\""));
}

TEST_CASE("ResNet runs on channels_last inputs and weights", "[architectures]") {
  torch::manual_seed(2);
  auto model = resnet_cifar(8);
  auto x = torch::randn({4, 1, 14, 14});
  model->eval();
  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model->forward_tensor(x);
    for (auto& p : model->parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  auto cl = x.contiguous(at::MemoryFormat::ChannelsLast);
  {
    torch::NoGradGuard no_grad;
    CHECK(torch::allclose(model->forward_tensor(cl), reference, 1e-4, 1e-5));
  }
  model->train();
  Batch batch{cl, torch::tensor({0, 1, 2, 3}, torch::kLong), {}};
  auto losses = model->loss(batch);
  REQUIRE(losses.size() == 1);
  losses[0].second.backward();
  CHECK(param(*model, "backbone.layer1.0.conv1.weight").grad().defined());
}
