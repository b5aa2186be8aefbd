#include <catch2/catch.hpp>

#include <filesystem>

#include <torch/torch.h>

#include "algorithms/distill/single_teacher_distill.h"
#include "apps/register_all.h"
#include "engine/checkpoint.h"
#include "engine/error.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

/// A loss of the test's own: mean squared difference, so the expected value is plain.
class SquaredDifference : public DistillLoss {
 public:
  SquaredDifference() : DistillLoss("SquaredDifference") {}
  std::vector<LossArgument> arguments() const override { return {{"preds_S"}, {"preds_T"}}; }
  torch::Tensor forward(const LossInputs& inputs) override {
    return (inputs.at("preds_S") - inputs.at("preds_T")).pow(2).mean();
  }
};

Json classifier(int64_t depth, int64_t width) {
  return {{"type", "ImageClassifier"},
          {"backbone", {{"type", "ResNet_CIFAR"}, {"depth", depth}, {"in_channels", 1}, {"base_channels", width}}},
          {"neck", {{"type", "GlobalAveragePooling"}}},
          {"head", {{"type", "LinearClsHead"}, {"num_classes", 5}, {"in_channels", width * 4}}}};
}

Json distill_config() {
  return {{"type", "SingleTeacherDistill"},
          {"architecture", classifier(8, 4)},
          {"teacher", classifier(14, 8)},
          {"distiller",
           {{"student_recorders", {{"fc", {{"type", "ModuleOutputs"}, {"source", "head.fc"}}}}},
            {"teacher_recorders", {{"fc", {{"type", "ModuleOutputs"}, {"source", "head.fc"}}}}},
            {"distill_losses", {{"loss_sd", {{"type", "SquaredDifference"}}}}},
            {"loss_forward_mappings",
             {{"loss_sd",
               {{"preds_S", {{"from_student", true}, {"recorder", "fc"}}},
                {"preds_T", {{"from_student", false}, {"recorder", "fc"}}}}}}}}}};
}

std::shared_ptr<SingleTeacherDistill> build(const Json& table) {
  register_all();
  if (!distill_loss_registry().contains("SquaredDifference")) {
    distill_loss_registry().add("SquaredDifference",
                                [](Args&, const BuildContext&) { return std::make_shared<SquaredDifference>(); });
  }
  Args args = Args::of(table, "model");
  return build_model_as<SingleTeacherDistill>(args, {}, "a distillation model");
}

}  // namespace

TEST_CASE("SingleTeacherDistill: student and distill losses; gradients reach the student only", "[distill]") {
  torch::manual_seed(0);
  auto algorithm = build(distill_config());
  algorithm->train();
  CHECK_FALSE(algorithm->teacher().is_training());  // teacher_norm_eval
  CHECK(algorithm->architecture().is_training());

  Batch batch{torch::randn({6, 1, 12, 12}), torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong), {}};
  LossMap losses = algorithm->loss(batch);
  REQUIRE(losses.size() == 2);
  CHECK(losses[0].first == "student.loss");
  CHECK(losses[1].first == "distill.loss_sd");

  // The distill loss equals the same computation on the two models' logits.
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    auto student_logits = algorithm->architecture().forward_tensor(batch.inputs);
    auto teacher_logits = algorithm->teacher().forward_tensor(batch.inputs);
    expected = (student_logits - teacher_logits).pow(2).mean();
  }
  // The student's BN is in train mode, so a second forward changes nothing of the logits'
  // value but its running stats; compare with a tolerance.
  CHECK(losses[1].second.item<double>() == Approx(expected.item<double>()).epsilon(1e-5));

  total_loss(losses).backward();
  for (const auto& p : algorithm->teacher().parameters()) {
    CHECK_FALSE(p.requires_grad());
    CHECK_FALSE(p.grad().defined());
  }
  int64_t with_grad = 0;
  for (const auto& p : algorithm->architecture().parameters()) with_grad += p.grad().defined();
  CHECK(with_grad == static_cast<int64_t>(algorithm->architecture().parameters().size()));
}

TEST_CASE("SingleTeacherDistill config errors name the recorder, argument or keys at fault", "[distill]") {
  Json bad_recorder = distill_config();
  bad_recorder["distiller"]["loss_forward_mappings"]["loss_sd"]["preds_T"]["recorder"] = "fcc";
  CHECK_THROWS_WITH(build(bad_recorder), Catch::Contains("loss_forward_mappings.loss_sd.preds_T.recorder") &&
                                             Catch::Contains("did you mean \"fc\""));

  Json bad_argument = distill_config();
  bad_argument["distiller"]["loss_forward_mappings"]["loss_sd"]["preds_X"] = {{"from_student", true},
                                                                            {"recorder", "fc"}};
  CHECK_THROWS_WITH(build(bad_argument), Catch::Contains("preds_X") && Catch::Contains("arguments: preds_S, preds_T"));

  Json bad_source = distill_config();
  bad_source["distiller"]["teacher_recorders"]["fc"]["source"] = "head.fcc";
  CHECK_THROWS_WITH(build(bad_source), Catch::Contains("head.fcc") && Catch::Contains("head.fc"));
}

TEST_CASE("A teacher checkpoint that does not fit the teacher lists the mismatched keys", "[distill]") {
  auto dir = fs::temp_directory_path() / "razor_test_teacher_ckpt";
  fs::create_directories(dir);
  register_all();
  Json other = classifier(8, 4);  // not the teacher's shape
  Args args = Args::of(other, "model");
  auto wrong = build_model_as<Model>(args, {}, "a model");
  CheckpointContents contents;
  contents.meta = {{"format", 1}};
  contents.model = state_dict(*wrong);
  const auto path = (dir / "wrong.pth").string();
  write_checkpoint(path, contents, nullptr);

  Json config = distill_config();
  config["teacher_ckpt"] = path;
  try {
    build(config);
    FAIL("a mismatched teacher checkpoint was loaded");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains("teacher_ckpt") && Catch::Contains("backbone.conv1.weight (checkpoint [4, 1, 3, 3], model [8, 1, 3, 3])"));
  }
}
