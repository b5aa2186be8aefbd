// ImageClassifier as the runner uses it: built from a config, loss, predict, training.
#include "components/architectures/image_classifier.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/architectures/cls_head.h"
#include "components/nn/cross_entropy_loss.h"
#include "tests/components/architectures/build.h"

using namespace razor;
using razor::test::build_model;
using razor::test::classifier;

namespace {

std::shared_ptr<ImageClassifier> toy_classifier(double label_smooth_val = 0.0) {
  Json backbone = {
      {"type", "ResNet_CIFAR"}, {"depth", 8}, {"in_channels", 1}, {"base_channels", 8}};
  Json table = classifier(backbone, 32, 4);
  table["head"]["loss"]["label_smooth_val"] = label_smooth_val;
  auto model = std::dynamic_pointer_cast<ImageClassifier>(build_model(table));
  REQUIRE(model);
  return model;
}

}  // namespace

TEST_CASE("register_architectures registers every architecture type once", "[architectures]") {
  register_architectures();
  register_architectures();
  for (const char* type :
       {"ImageClassifier", "ResNet", "ResNet_CIFAR", "MobileNetV2", "GlobalAveragePooling",
        "ClsHead", "LinearClsHead", "CrossEntropyLoss", "LabelSmoothLoss"}) {
    CHECK(model_registry().contains(type));
  }
}

TEST_CASE("ImageClassifier loss is the head's cross entropy, predict is softmax",
          "[architectures]") {
  torch::manual_seed(0);
  auto model = toy_classifier(0.1);
  model->eval();
  Batch batch{torch::randn({5, 1, 12, 12}), torch::tensor({0, 1, 2, 3, 1}, torch::kLong), {}};
  auto logits = model->forward_tensor(batch.inputs);
  CHECK(logits.sizes() == torch::IntArrayRef({5, 4}));
  auto losses = model->loss(batch);
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].first == "loss");
  auto expected = torch::nn::functional::cross_entropy(
      logits, batch.targets, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(0.1));
  CHECK(losses[0].second.item<double>() == Approx(expected.item<double>()).epsilon(1e-5));
  auto scores = model->predict(batch);
  CHECK(torch::allclose(scores, torch::softmax(logits, 1)));
  CHECK(torch::allclose(scores.sum(1), torch::ones({5})));

  CHECK(model->neck() != nullptr);
  CHECK(dynamic_cast<LinearClsHead&>(model->head()).num_classes() == 4);
  CHECK(nn::find_module(*model, "head.loss_module").path() == "head.loss_module");
  CHECK(nn::find_module(*model, "neck.flatten").path() == "neck.flatten");
}

TEST_CASE("A recorder-style hook on head.loss_module sees logits and targets", "[architectures]") {
  auto model = toy_classifier();
  torch::Tensor target, logits;
  nn::find_module(*model, "head.loss_module")
      .add_forward_hook([&](nn::Module&, const nn::Inputs& inputs, torch::Tensor&) {
        logits = inputs.at(0);
        target = inputs.at(1);
      });
  torch::Tensor fc_out;
  nn::find_module(*model, "head.fc")
      .add_forward_hook([&](nn::Module&, const nn::Inputs&, torch::Tensor& out) { fc_out = out; });
  Batch batch{torch::randn({3, 1, 12, 12}), torch::tensor({2, 0, 1}, torch::kLong), {}};
  model->loss(batch);
  CHECK(torch::equal(target, batch.targets));
  CHECK(torch::equal(logits, fc_out));
}

TEST_CASE("The head's loss defaults to cross entropy, no neck is allowed", "[architectures]") {
  Json table = {
      {"type", "ImageClassifier"},
      {"backbone",
       {{"type", "ResNet_CIFAR"}, {"depth", 8}, {"in_channels", 1}, {"base_channels", 8}}},
      {"neck", {{"type", "GlobalAveragePooling"}}},
      {"head", {{"type", "LinearClsHead"}, {"num_classes", 3}, {"in_channels", 32}}}};
  auto model = std::dynamic_pointer_cast<ImageClassifier>(build_model(table));
  REQUIRE(model);
  CHECK(dynamic_cast<nn::CrossEntropyLoss*>(&model->head().loss_module()) != nullptr);

  Json no_neck = {{"type", "ImageClassifier"},
                  {"backbone", {{"type", "ResNet_CIFAR"}, {"depth", 8}, {"base_channels", 8}}},
                  {"head", {{"type", "ClsHead"}}}};
  auto bare = std::dynamic_pointer_cast<ImageClassifier>(build_model(no_neck));
  REQUIRE(bare);
  CHECK(bare->neck() == nullptr);
  CHECK(bare->forward_tensor(torch::randn({1, 3, 8, 8})).sizes() ==
        torch::IntArrayRef({1, 32, 2, 2}));

  Json not_a_head = table;
  not_a_head["head"] = {{"type", "GlobalAveragePooling"}};
  CHECK_THAT(test::error_of([&] { build_model(not_a_head); }),
             Catch::Contains("model.head.type") &&
                 Catch::Contains("cannot be used as a classification head"));
  Json missing = table;
  missing.erase("head");
  CHECK_THAT(test::error_of([&] { build_model(missing); }), Catch::Contains("model.head"));
}

TEST_CASE("A few SGD steps reduce the loss on a fixed batch", "[architectures]") {
  torch::manual_seed(3);
  auto model = toy_classifier();
  model->train();
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  Batch batch{torch::randn({16, 1, 12, 12}), torch::randint(0, 4, {16}, torch::kLong), {}};
  double first = 0, last = 0;
  for (int step = 0; step < 15; ++step) {
    sgd.zero_grad();
    auto loss = total_loss(model->loss(batch));
    loss.backward();
    sgd.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  CHECK(last < first * 0.7);
}
