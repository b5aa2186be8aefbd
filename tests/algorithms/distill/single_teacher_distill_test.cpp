#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "algorithms/distill/single_teacher_distill.h"
#include "components/distill/connectors/ofd_connector.h"
#include "components/nn/batch_norm.h"
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

TEST_CASE("SingleTeacherDistill: student and distill losses, gradients reach the student only", "[distill]") {
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

TEST_CASE("A connector adapts the student's record before the loss, unknown connectors are named", "[distill]") {
  torch::manual_seed(0);
  Json table = distill_config();
  table["distiller"]["connectors"] = {
      {"lift", {{"type", "TorchFunctionalConnector"}, {"function_name", "softmax"}, {"func_args", {{"dim", 1}}}}}};
  table["distiller"]["loss_forward_mappings"]["loss_sd"]["preds_S"]["connector"] = "lift";
  auto algorithm = build(table);
  algorithm->train();
  Batch batch{torch::randn({4, 1, 12, 12}), torch::tensor({0, 1, 2, 3}, torch::kLong), {}};
  LossMap losses = algorithm->loss(batch);
  auto student_logits = algorithm->distiller().student_recorders().get("fc").get();
  auto teacher_logits = algorithm->distiller().teacher_recorders().get("fc").get();
  auto expected = (torch::softmax(student_logits, 1) - teacher_logits).pow(2).mean();
  CHECK(losses[1].second.item<double>() == Approx(expected.item<double>()).epsilon(1e-5));

  table["distiller"]["loss_forward_mappings"]["loss_sd"]["preds_S"]["connector"] = "lfit";
  CHECK_THROWS_WITH(build(table), Catch::Contains("loss_sd.preds_S.connector") && Catch::Contains("lift"));
  table["distiller"]["loss_forward_mappings"]["loss_sd"]["preds_S"].erase("connector");
  table["distiller"]["loss_forward_mappings"]["loss_sd"]["preds_S"]["connector_idx"] = 0;
  CHECK_THROWS_WITH(build(table), Catch::Contains("without a connector"));
}

TEST_CASE("OFD margins are E[x | x < 0] of the teacher's BN response", "[distill]") {
  // x ~ N(beta, gamma^2); Phi(0.5) = 0.6914624613, 1/sqrt(2 pi) = 0.3989422804.
  auto margins = ofd_margins(torch::tensor({1.0f, 2.0f, -0.1f}), torch::tensor({0.0f, -1.0f, 5.0f}));
  CHECK(margins[0].item<double>() == Approx(-0.3989422804 / 0.5).epsilon(1e-6));
  CHECK(margins[1].item<double>() == Approx(-2.0 * std::exp(-0.125) * 0.3989422804 / 0.6914624613 - 1.0).epsilon(1e-6));
  CHECK(margins[2].item<double>() == Approx(-0.3).epsilon(1e-6));  // P(x < 0) < 0.001: -3|gamma|
}

TEST_CASE("OverhaulFeatureDistillation sets the teacher connector's margins from the teacher's BN", "[distill]") {
  torch::manual_seed(0);
  Json table = distill_config();
  table["type"] = "OverhaulFeatureDistillation";
  table["distiller"] = {
      {"type", "OFDDistiller"},
      {"student_recorders", {{"bn", {{"type", "ModuleOutputs"}, {"source", "backbone.layer3.0.bn2"}}}}},
      {"teacher_recorders", {{"bn", {{"type", "ModuleOutputs"}, {"source", "backbone.layer3.0.bn2"}}}}},
      {"connectors",
       {{"s", {{"type", "ConvModuleConnector"}, {"in_channel", 16}, {"out_channel", 32}, {"norm_cfg", {{"type", "BN"}}}}},
        {"t", {{"type", "OFDTeacherConnector"}}}}},
      {"distill_losses", {{"loss_ofd", {{"type", "OFDLoss"}}}}},
      {"loss_forward_mappings",
       {{"loss_ofd",
         {{"s_feature", {{"from_student", true}, {"recorder", "bn"}, {"connector", "s"}}},
          {"t_feature", {{"from_student", false}, {"recorder", "bn"}, {"connector", "t"}}}}}}}};
  table["distiller"]["connectors"]["s"]["act_cfg"] = nullptr;
  auto algorithm = build(table);
  auto& bn = dynamic_cast<nn::BatchNorm2d&>(nn::find_module(algorithm->teacher(), "backbone.layer3.0.bn2"));
  auto expected = ofd_margins(bn.weight, bn.bias);
  auto* connector = dynamic_cast<OFDTeacherConnector*>(&algorithm->distiller().connector("t"));
  REQUIRE(connector);
  auto x = torch::randn({2, 32, 3, 3}) - 2.0;
  auto clipped = connector->forward(x)[0];
  CHECK(clipped.equal(torch::max(x, expected.view({1, -1, 1, 1}))));

  // The margins come from a BatchNorm2d: recording anything else is an error naming it.
  table["distiller"]["teacher_recorders"]["bn"]["source"] = "backbone.layer3.0.conv2";
  CHECK_THROWS_WITH(build(table), Catch::Contains("BatchNorm2d") && Catch::Contains("backbone.layer3.0.conv2"));
}

namespace {

/// distill_config() with MMRazor's KD loss (KLDivergence, tau 4) on the two heads' logits.
Json kd_config() {
  Json table = distill_config();
  table["distiller"]["distill_losses"] = {{"loss_kd", {{"type", "KLDivergence"}, {"tau", 4.0}}}};
  table["distiller"]["loss_forward_mappings"] = {
      {"loss_kd",
       {{"preds_S", {{"from_student", true}, {"recorder", "fc"}}},
        {"preds_T", {{"from_student", false}, {"recorder", "fc"}}}}}};
  return table;
}

/// Counts the calls of the teacher's loss module (its cross entropy).
struct LossModuleCalls {
  int64_t count = 0;
  nn::HookHandle handle;
  explicit LossModuleCalls(SingleTeacherDistill& algorithm) {
    auto& loss_module = nn::find_module(algorithm.teacher(), "head.loss_module");
    handle = loss_module.add_forward_hook(
        [this](nn::Module&, const nn::Inputs&, torch::Tensor&) { ++count; });
  }
};

}  // namespace

TEST_CASE("The teacher runs forward_tensor without autograd, KD losses are those of its loss pass",
          "[distill]") {
  // The same weights twice; the second one records the teacher's loss inputs, which only its
  // loss pass computes.
  torch::manual_seed(0);
  auto forward_only = build(kd_config());
  Json with_labels = kd_config();
  with_labels["distiller"]["teacher_recorders"]["labels"] = {{"type", "ModuleInputs"},
                                                             {"source", "head.loss_module"}};
  torch::manual_seed(0);
  auto loss_pass = build(with_labels);
  CHECK_FALSE(forward_only->teacher_runs_loss());
  CHECK(loss_pass->teacher_runs_loss());
  const StateDict a = state_dict(*forward_only), b = state_dict(*loss_pass);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(torch::equal(a[i].second, b[i].second));

  // Logits far from uniform, so that the KL term is not lost in float rounding.
  for (auto* algorithm : {forward_only.get(), loss_pass.get()}) {
    torch::NoGradGuard no_grad;
    for (Model* model : {&algorithm->teacher(), &algorithm->architecture()}) {
      nn::find_module(*model, "head.fc").named_parameters()["weight"].mul_(100.0);
    }
  }
  LossModuleCalls forward_calls(*forward_only), loss_calls(*loss_pass);
  forward_only->train();
  loss_pass->train();
  torch::manual_seed(1);
  Batch batch{torch::randn({6, 1, 12, 12}), torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong), {}};
  LossMap fast = forward_only->loss(batch);
  LossMap full = loss_pass->loss(batch);
  CHECK(forward_calls.count == 0);  // no cross entropy that nobody reads
  CHECK(loss_calls.count == 1);
  CHECK(loss_pass->distiller().teacher_recorders().get("labels").get(0, 1).equal(batch.targets));

  REQUIRE(fast.size() == 2);
  REQUIRE(full.size() == 2);
  for (size_t i = 0; i < fast.size(); ++i) {
    CHECK(fast[i].first == full[i].first);
    CHECK(std::abs(fast[i].second.item<double>() - full[i].second.item<double>()) < 1e-6);
  }
  CHECK(fast[1].first == "distill.loss_kd");

  // And the KD value itself, in plain LibTorch: tau^2 * KL(p_T || p_S), batch mean.
  torch::Tensor teacher_logits = forward_only->distiller().teacher_recorders().get("fc").get();
  torch::Tensor student_logits = forward_only->distiller().student_recorders().get("fc").get();
  CHECK_FALSE(teacher_logits.requires_grad());  // a frozen teacher keeps no graph
  CHECK_FALSE(teacher_logits.grad_fn());
  const double tau = 4.0;
  auto t = teacher_logits.to(torch::kDouble) / tau;
  auto s = student_logits.detach().to(torch::kDouble) / tau;
  auto p_t = torch::softmax(t, 1);
  auto expected = (p_t * (torch::log_softmax(t, 1) - torch::log_softmax(s, 1))).sum() /
                  teacher_logits.size(0) * tau * tau;
  REQUIRE(expected.item<double>() > 1e-3);
  CHECK(fast[1].second.item<double>() == Approx(expected.item<double>()).epsilon(1e-5));
}

TEST_CASE("A trainable teacher runs forward_tensor with autograd and gets gradients", "[distill]") {
  torch::manual_seed(0);
  Json table = kd_config();
  table["teacher_trainable"] = true;
  table["distiller"]["distill_losses"]["loss_kd"]["teacher_detach"] = false;
  auto algorithm = build(table);
  CHECK_FALSE(algorithm->teacher_runs_loss());
  LossModuleCalls calls(*algorithm);
  algorithm->train();
  Batch batch{torch::randn({4, 1, 12, 12}), torch::tensor({0, 1, 2, 3}, torch::kLong), {}};
  LossMap losses = algorithm->loss(batch);
  CHECK(calls.count == 0);
  CHECK(algorithm->distiller().teacher_recorders().get("fc").get().requires_grad());
  total_loss(losses).backward();
  torch::Tensor fc_weight =
      nn::find_module(algorithm->teacher(), "head.fc").named_parameters()["weight"];
  REQUIRE(fc_weight.grad().defined());
  CHECK(fc_weight.grad().abs().sum().item<double>() > 0.0);
}

TEST_CASE("Batch augments, deliveries and the sample_idx tap keep the teacher's loss pass",
          "[distill]") {
  Json tap = kd_config();
  tap["distiller"]["teacher_recorders"]["idx"] = {{"type", "Tap"}, {"source", "sample_idx"}};
  CHECK(build(tap)->teacher_runs_loss());

  Json augmented = kd_config();
  const Json mixup = Json::array({{{"type", "Mixup"}, {"alpha", 0.8}}});
  augmented["teacher"]["train_cfg"] = {{"augments", mixup}};
  CHECK(build(augmented)->teacher_runs_loss());

  Json delivered = augmented;
  delivered["architecture"]["train_cfg"] = augmented["teacher"]["train_cfg"];
  delivered["distiller"]["distill_deliveries"] = {
      {"augments", {{"source", "batch_augments"}, {"max_keep_data", 1}}}};
  delivered["teacher"].erase("train_cfg");
  CHECK(build(delivered)->teacher_runs_loss());

  // A tap that the forward pass publishes too does not need it.
  Json pre_logits = kd_config();
  pre_logits["distiller"]["teacher_recorders"]["feat"] = {{"type", "Tap"},
                                                          {"source", "head.pre_logits"}};
  CHECK_FALSE(build(pre_logits)->teacher_runs_loss());
}
