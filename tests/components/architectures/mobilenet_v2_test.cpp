// MobileNetV2: mmcls layout, names, widths and shapes.
#include "components/architectures/mobilenet_v2.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/architectures/image_classifier.h"
#include "components/architectures/make_divisible.h"
#include "components/nn/module.h"
#include "tests/components/architectures/build.h"

using namespace razor;
using razor::test::build_model;
using razor::test::classifier;
using razor::test::num_parameters;

TEST_CASE("make_divisible rounds as mmcls does", "[architectures]") {
  CHECK(make_divisible(32 * 1.0, 8) == 32);
  CHECK(make_divisible(16 * 0.5, 8) == 8);
  CHECK(make_divisible(24 * 0.75, 8) == 24);  // 18 -> 16 is below 90%: 24
  CHECK(make_divisible(96 * 1.5, 8) == 144);
  CHECK(make_divisible(3, 8) == 8);
  CHECK(make_divisible(44, 8) == 48);
}

TEST_CASE("MobileNetV2 matches torchvision's size and mmcls's names", "[architectures]") {
  Json backbone = {{"type", "MobileNetV2"}, {"widen_factor", 1.0}};
  auto model =
      std::dynamic_pointer_cast<ImageClassifier>(build_model(classifier(backbone, 1280, 1000)));
  REQUIRE(model);
  CHECK(num_parameters(*model) == 3504872);  // torchvision mobilenet_v2
  for (const char* path :
       {"backbone.conv1.conv", "backbone.conv1.bn", "backbone.conv1.activate",
        "backbone.layer1.0.conv.0.conv", "backbone.layer1.0.conv.1.conv",
        "backbone.layer2.0.conv.2.bn", "backbone.layer2.1.add", "backbone.layer7.0.conv.2",
        "backbone.conv2.activate", "neck.gap", "head.fc"}) {
    CHECK(nn::find_module(*model, path).path() == path);
  }
  auto& mobilenet = dynamic_cast<MobileNetV2&>(model->backbone());
  CHECK(mobilenet.layer(0).size() == 1);
  CHECK(mobilenet.layer(3).size() == 4);
  CHECK_FALSE(mobilenet.layer(1).at<InvertedResidual>(0).use_residual());
  CHECK(mobilenet.layer(1).at<InvertedResidual>(1).use_residual());
  CHECK(mobilenet.layer(0).at<InvertedResidual>(0).conv().size() ==
        2);  // no expand conv at ratio 1
  auto params = model->named_parameters();
  CHECK(params.find("backbone.layer2.0.conv.1.conv.weight")->sizes() ==
        torch::IntArrayRef({96, 1, 3, 3}));
  CHECK(params.find("backbone.conv1.conv.bias") == nullptr);
}

TEST_CASE("MobileNetV2 shapes on small inputs, widen factors and stem stride", "[architectures]") {
  Json small = {
      {"type", "MobileNetV2"}, {"in_channels", 1}, {"stem_stride", 1}, {"widen_factor", 0.5}};
  auto model = std::dynamic_pointer_cast<ImageClassifier>(build_model(classifier(small, 1280, 10)));
  REQUIRE(model);
  auto x = torch::randn({2, 1, 32, 32});
  CHECK(model->backbone()(x).sizes() == torch::IntArrayRef({2, 1280, 2, 2}));
  CHECK(model->forward_tensor(x).sizes() == torch::IntArrayRef({2, 10}));
  CHECK(model->named_parameters().find("backbone.conv1.conv.weight")->sizes() ==
        torch::IntArrayRef({16, 1, 3, 3}));

  Json wide = {{"type", "MobileNetV2"}, {"widen_factor", 1.5}};
  auto wide_model =
      std::dynamic_pointer_cast<ImageClassifier>(build_model(classifier(wide, 1920, 10)));
  REQUIRE(wide_model);
  CHECK(wide_model->backbone()(torch::randn({1, 3, 32, 32})).sizes() ==
        torch::IntArrayRef({1, 1920, 1, 1}));
  CHECK(wide_model->named_parameters().find("backbone.conv1.conv.weight")->size(0) == 48);

  // channels_last forward equals the contiguous one.
  model->eval();
  torch::NoGradGuard no_grad;
  auto reference = model->forward_tensor(x);
  for (auto& p : model->parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  CHECK(torch::allclose(model->forward_tensor(x.contiguous(at::MemoryFormat::ChannelsLast)),
                        reference, 1e-4, 1e-5));
}

TEST_CASE("MobileNetV2 config errors name the key", "[architectures]") {
  Json bad = {{"type", "MobileNetV2"}, {"stem_stride", 3}};
  CHECK_THAT(test::error_of([&] { build_model(classifier(bad, 1280)); }),
             Catch::Contains("model.backbone.stem_stride"));
  Json head = {{"type", "MobileNetV2"}};
  CHECK_THAT(test::error_of([&] { build_model(classifier(head, 1024)); }),
             Catch::Contains("model.head.in_channels") && Catch::Contains("1280"));
}
