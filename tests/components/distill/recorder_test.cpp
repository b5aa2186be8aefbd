#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "apps/register_all.h"
#include "components/architectures/image_classifier.h"
#include "components/distill/recorder.h"
#include "engine/error.h"
#include "engine/model.h"

using namespace razor;

namespace {

std::shared_ptr<Model> resnet8() {
  register_all();
  Json table = {{"type", "ImageClassifier"},
                {"backbone", {{"type", "ResNet_CIFAR"}, {"depth", 8}, {"in_channels", 1}}},
                {"neck", {{"type", "GlobalAveragePooling"}}},
                {"head", {{"type", "LinearClsHead"}, {"num_classes", 10}, {"in_channels", 64}}}};
  Args args = Args::of(table, "model");
  auto model = build_model_as<Model>(args, {}, "a model");
  model->eval();
  return model;
}

}  // namespace

TEST_CASE("A module called several times is recorded once per call", "[recorders]") {
  auto model = resnet8();
  Json table = {{"relu", {{"type", "ModuleOutputs"}, {"source", "backbone.layer1.0.relu"}}},
                {"conv", {{"type", "ModuleOutputs"}, {"source", "backbone.layer1.0.conv2"}}},
                {"conv_in", {{"type", "ModuleInputs"}, {"source", "backbone.layer1.0.conv2"}}}};
  Args args = Args::of(table, "student_recorders");
  RecorderManager manager = build_recorders(args);
  manager.prepare(*model);
  auto x = torch::randn({2, 1, 12, 12});
  {
    RecordingScope scope(manager);
    model->forward_tensor(x);
  }
  // The block's relu runs twice: after bn1, and after the residual add.
  auto& relu = manager.get("relu");
  REQUIRE(relu.data().size() == 2);
  auto& conv2 = manager.get("conv");
  REQUIRE(conv2.data().size() == 1);
  // record_idx 0 is relu(bn1(conv1(.))), which conv2 consumed.
  CHECK(torch::equal(manager.get("conv_in").get(0, 0), relu.get(0)));
  CHECK(torch::all(relu.get(0) >= 0).item<bool>());
  CHECK(torch::all(relu.get(1) >= 0).item<bool>());
  CHECK_FALSE(torch::equal(relu.get(0), relu.get(1)));
  CHECK_THROWS_WITH(relu.get(2), Catch::Contains("record_idx 2 is out of range"));
}

TEST_CASE("ModuleInputs records the input list, data_idx picks an element", "[recorders]") {
  auto model = resnet8();
  Json table = {{"labels", {{"type", "ModuleInputs"}, {"source", "head.loss_module"}}},
                {"logits", {{"type", "ModuleOutputs"}, {"source", "head.fc"}}}};
  Args args = Args::of(table, "student_recorders");
  RecorderManager manager = build_recorders(args);
  manager.prepare(*model);
  Batch batch{torch::randn({4, 1, 12, 12}), torch::tensor({1, 2, 3, 4}, torch::kLong), {}};
  {
    RecordingScope scope(manager);
    model->loss(batch);
  }
  auto& labels = manager.get("labels");
  CHECK(torch::equal(labels.get(0, 1), batch.targets));
  CHECK(torch::equal(labels.get(0, 0), manager.get("logits").get(0)));
  CHECK_THROWS_WITH(labels.get(0), Catch::Contains("give data_idx"));
  CHECK_THROWS_WITH(labels.get(0, 2), Catch::Contains("data_idx 2 is out of range"));
}

TEST_CASE("Recorders detach after recording: no hooks or buffers pile up", "[recorders]") {
  auto model = resnet8();
  Json table = {{"fc", {{"type", "ModuleOutputs"}, {"source", "head.fc"}}},
                {"tap", {{"type", "Tap"}, {"source", "test.value"}}},
                {"weight", {{"type", "Parameter"}, {"source", "head.fc.weight"}}}};
  Args args = Args::of(table, "student_recorders");
  RecorderManager manager = build_recorders(args);
  manager.prepare(*model);
  auto& fc = nn::find_module(*model, "head.fc");
  for (int i = 0; i < 50; ++i) {
    RecordingScope scope(manager);
    model->forward_tensor(torch::randn({2, 1, 12, 12}));
    tap("test.value", torch::full({1}, static_cast<double>(i)));
  }
  CHECK(fc.num_hooks() == 0);
  CHECK(num_tap_listeners() == 0);
  CHECK(manager.get("fc").data().size() == 1);  // the last pass only
  CHECK(manager.get("tap").get(0).item<double>() == 49.0);
  CHECK(manager.get("weight").get(0).data_ptr() == fc.named_parameters()["weight"].data_ptr());
  // Outside a recording scope nothing is recorded.
  tap("test.value", torch::zeros({1}));
  CHECK(manager.get("tap").data().size() == 1);
}

TEST_CASE("A recorder naming a missing module lists the nearest module names", "[recorders]") {
  auto model = resnet8();
  Json table = {{"bad", {{"type", "ModuleOutputs"}, {"source", "backbone.layer1.0.conv3"}}}};
  Args args = Args::of(table, "student_recorders");
  RecorderManager manager = build_recorders(args);
  try {
    manager.prepare(*model);
    FAIL("a missing module was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains("backbone.layer1.0.conv3") && Catch::Contains("backbone.layer1.0.conv1") &&
                             Catch::Contains("recorder \"bad\""));
  }
}
