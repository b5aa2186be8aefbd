#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "algorithms/distill/single_teacher_distill.h"
#include "apps/register_all.h"
#include "components/architectures/batch_augments.h"
#include "components/distill/delivery.h"
#include "components/nn/deliverable.h"
#include "engine/error.h"

using namespace razor;

namespace {

Json mixing_classifier(int64_t depth, const Json& augments) {
  return {{"type", "ImageClassifier"},
          {"backbone", {{"type", "ResNet_CIFAR"}, {"depth", depth}, {"in_channels", 1}, {"base_channels", 4}}},
          {"neck", {{"type", "GlobalAveragePooling"}}},
          {"head", {{"type", "LinearClsHead"}, {"num_classes", 5}, {"in_channels", 16}}},
          {"train_cfg", {{"augments", augments}}}};
}

/// Teacher and student both mix their batches; recorders keep what each backbone saw and
/// which labels each loss got.
Json distill_with_augments(const Json& augments, bool deliver) {
  Json seen = {{"images", {{"type", "ModuleInputs"}, {"source", "backbone"}}},
               {"labels", {{"type", "ModuleInputs"}, {"source", "head.loss_module"}}},
               {"fc", {{"type", "ModuleOutputs"}, {"source", "head.fc"}}}};
  Json distiller = {{"student_recorders", seen},
                    {"teacher_recorders", seen},
                    {"distill_losses", {{"loss_kd", {{"type", "KLDivergence"}, {"tau", 4.0}}}}},
                    {"loss_forward_mappings",
                     {{"loss_kd",
                       {{"preds_S", {{"from_student", true}, {"recorder", "fc"}}},
                        {"preds_T", {{"from_student", false}, {"recorder", "fc"}}}}}}}};
  if (deliver) distiller["distill_deliveries"] = {{"augments", {{"source", "batch_augments"}, {"max_keep_data", 1}}}};
  return {{"type", "SingleTeacherDistill"},
          {"architecture", mixing_classifier(8, augments)},
          {"teacher", mixing_classifier(14, augments)},
          {"distiller", distiller}};
}

std::shared_ptr<SingleTeacherDistill> build(const Json& table) {
  register_all();
  Args args = Args::of(table, "model");
  return build_model_as<SingleTeacherDistill>(args, {}, "a distillation model");
}

Batch random_batch() {
  return {torch::randn({6, 1, 12, 12}), torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong), {}};
}

torch::Tensor seen(SingleTeacherDistill& algorithm, bool student, const std::string& recorder, int64_t data_idx) {
  auto& manager = student ? algorithm.distiller().student_recorders() : algorithm.distiller().teacher_recorders();
  return manager.get(recorder).get(0, data_idx);
}

}  // namespace

TEST_CASE("Mixup equals its closed form with the drawn coefficient and permutation", "[delivery]") {
  torch::manual_seed(1);
  auto x = torch::randn({5, 2, 4, 4});
  auto y = torch::one_hot(torch::tensor({0, 1, 2, 1, 0}, torch::kLong), 3).to(torch::kFloat);
  Mixup mixup(0.8);
  auto choices = mixup.draw(5, 4, 4);
  const double lambda = choices[0].item<double>();
  CHECK(lambda > 0.0);
  CHECK(lambda < 1.0);
  auto perm = choices[1];
  CHECK(std::get<0>(perm.sort()).equal(torch::arange(5)));
  auto [mx, my] = mixup.mix(x, y, choices);
  CHECK(torch::allclose(mx, lambda * x + (1 - lambda) * x.index_select(0, perm), 1e-5, 1e-6));
  CHECK(torch::allclose(my, lambda * y + (1 - lambda) * y.index_select(0, perm), 1e-5, 1e-6));
  CHECK(torch::allclose(my.sum(1), torch::ones({5})));
}

TEST_CASE("CutMix pastes a box and weighs the labels by the box's true area", "[delivery]") {
  torch::manual_seed(2);
  auto x = torch::randn({4, 1, 8, 6});
  auto y = torch::one_hot(torch::tensor({0, 1, 2, 3}, torch::kLong), 4).to(torch::kFloat);
  CutMix cutmix(1.0);
  auto choices = cutmix.draw(4, 8, 6);
  auto box = choices[2];
  const int64_t y1 = box[0].item<int64_t>(), y2 = box[1].item<int64_t>();
  const int64_t x1 = box[2].item<int64_t>(), x2 = box[3].item<int64_t>();
  const double lambda = choices[0].item<double>();
  CHECK(lambda == Approx(1.0 - double((y2 - y1) * (x2 - x1)) / 48.0));
  auto perm = choices[1];
  auto [mx, my] = cutmix.mix(x, y, choices);
  auto expected = x.clone();
  for (int64_t n = 0; n < 4; ++n) {
    for (int64_t i = y1; i < y2; ++i) {
      for (int64_t j = x1; j < x2; ++j) expected[n][0][i][j] = x[perm[n].item<int64_t>()][0][i][j];
    }
  }
  CHECK(mx.equal(expected));
  CHECK(torch::allclose(my, lambda * y + (1 - lambda) * y.index_select(0, perm), 1e-6, 1e-7));
}

TEST_CASE("A delivery keeps values first in, first out, and replays them", "[delivery]") {
  Delivery delivery("draw", 2);
  int64_t counter = 0;
  auto draw = [&] { return std::vector<torch::Tensor>{torch::tensor(++counter)}; };
  delivery.start();
  CHECK(num_deliverable_bindings() == 1);
  for (int i = 0; i < 3; ++i) deliverable("draw", draw);  // keeps 2 and 3 (max_keep_data 2)
  CHECK(delivery.queued() == 2);
  delivery.set_override(true);
  CHECK(deliverable("draw", draw)[0].item<int64_t>() == 2);
  CHECK(deliverable("draw", draw)[0].item<int64_t>() == 3);
  CHECK(counter == 3);  // replaying computes nothing
  CHECK_THROWS_WITH(deliverable("draw", draw), Catch::Contains("nothing to replay"));
  delivery.stop();
  CHECK(num_deliverable_bindings() == 0);
  CHECK(deliverable("draw", draw)[0].item<int64_t>() == 4);  // unbound: computed
}

TEST_CASE("With a delivery, teacher and student see the same mixed images and labels", "[delivery]") {
  const Json augments = Json::array({{{"type", "Mixup"}, {"alpha", 0.8}}, {{"type", "CutMix"}, {"alpha", 1.0}}});
  for (bool deliver : {true, false}) {
    torch::manual_seed(3);
    auto algorithm = build(distill_with_augments(augments, deliver));
    algorithm->train();
    Batch batch = random_batch();
    for (int step = 0; step < 3; ++step) {
      algorithm->loss(batch);
      auto teacher_images = seen(*algorithm, false, "images", 0);
      auto student_images = seen(*algorithm, true, "images", 0);
      auto teacher_labels = seen(*algorithm, false, "labels", 1);
      auto student_labels = seen(*algorithm, true, "labels", 1);
      // The batch was mixed: soft labels, images other than the batch's.
      CHECK(student_labels.is_floating_point());
      CHECK(student_labels.sizes() == torch::IntArrayRef({6, 5}));
      CHECK_FALSE(student_images.equal(batch.inputs));
      if (deliver) {
        CHECK(teacher_images.equal(student_images));
        CHECK(teacher_labels.equal(student_labels));
      } else {
        CHECK_FALSE(teacher_images.equal(student_images));
      }
      CHECK(num_deliverable_bindings() == 0);
    }
  }
}

TEST_CASE("Batch augment and delivery config errors name the key", "[delivery]") {
  Json bad_type = distill_with_augments(Json::array({{{"type", "Mixp"}, {"alpha", 0.8}}}), true);
  CHECK_THROWS_WITH(build(bad_type), Catch::Contains("architecture.train_cfg.augments") && Catch::Contains("Mixp"));
  Json bad_probs = distill_with_augments(Json::array({{{"type", "Mixup"}, {"alpha", 0.8}}}), true);
  bad_probs["architecture"]["train_cfg"]["probs"] = {0.5, 0.5};
  CHECK_THROWS_WITH(build(bad_probs), Catch::Contains("probs"));
  Json bad_delivery = distill_with_augments(Json::array({{{"type", "Mixup"}, {"alpha", 0.8}}}), true);
  bad_delivery["distiller"]["distill_deliveries"]["augments"]["max_keep"] = 2;
  CHECK_THROWS_WITH(build(bad_delivery), Catch::Contains("max_keep"));
}
