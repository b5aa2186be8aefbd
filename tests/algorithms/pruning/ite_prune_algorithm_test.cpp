// ItePruneAlgorithm on ResNet-20 in one process: the FLOPs and params of a pruned model
// against the closed form at its units' widths, the cut copy (static_architecture) equal to
// the dynamic model, also with widths zero-padded to multiples of 8, target_flops as one ratio for every unit, and the pruned model rebuilt
// by sub_model: from ItePruneValLoop's fix_subnet.json and fix_subnet_weight.pth, and from
// the trained weights with init_weight_from_supernet (L1 units pick the same channels).
#include "algorithms/pruning/ite_prune_algorithm.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <numeric>

#include "algorithms/pruning/ite_prune_val_loop.h"
#include "apps/register_all.h"
#include "components/nn/module.h"
#include "components/nn/weighted_op.h"
#include "engine/optim_wrapper.h"
#include "components/estimators/resource_estimator.h"
#include "engine/checkpoint.h"
#include "engine/text_file.h"
#include "engine/version.h"
#include "tests/components/architectures/build.h"
#include "tests/components/estimators/resnet20_closed_form.h"
#include "tests/datasets/temp_dir.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

const Json kResNet20 = test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64);

const Json kMutator = Json::parse(R"({
    "type": "ChannelMutator",
    "channel_unit_cfg": {"type": "L1MutableChannelUnit", "default_args": {"choice_mode": "ratio"}},
    "parse_cfg": {"type": "ChannelAnalyzer", "demo_input": [1, 1, 28, 28]}})");

std::shared_ptr<torch::nn::Module> build(const Json& table) {
  register_all();
  return test::build_model(table);
}

std::shared_ptr<ItePruneAlgorithm> pruner(const Json& extra) {
  Json table = {{"type", "ItePruneAlgorithm"}, {"architecture", kResNet20}, {"mutator_cfg", kMutator}};
  table.update(extra);
  auto algorithm = std::dynamic_pointer_cast<ItePruneAlgorithm>(build(table));
  REQUIRE(algorithm);
  algorithm->eval();
  return algorithm;
}

ResourceReport estimate(Model& model) {
  torch::NoGradGuard no_grad;
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}));
  return estimator.estimate_report(model, [&](const torch::Tensor& x) { return model.forward_tensor(x); });
}

torch::Tensor logits(Model& model, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  model.eval();
  return model.forward_tensor(x);
}

double max_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

const std::vector<std::string> kStageUnits = {"backbone.conv1_(0, 16)_16", "backbone.layer2.0.conv2_(0, 32)_32",
                                              "backbone.layer3.0.conv2_(0, 64)_64"};

std::string inner_unit(int stage, int block) {
  const int64_t c = 16 << stage;
  return "backbone.layer" + std::to_string(stage + 1) + "." + std::to_string(block) + ".conv1_(0, " +
         std::to_string(c) + ")_" + std::to_string(c);
}

}  // namespace

TEST_CASE("A pruned ResNet-20 counts the closed-form FLOPs and params of its widths, and cuts to an equal model",
          "[pruning]") {
  // A different ratio for every unit: widths int(C * ratio).
  const std::vector<double> stage_ratios = {0.5, 0.75, 0.25};
  const double inner_ratios[3][3] = {{0.25, 0.5, 0.75}, {0.5, 0.125, 0.875}, {0.375, 0.625, 0.25}};
  Json target = Json::object();
  test::ResNet20Widths widths;
  for (int s = 0; s < 3; ++s) {
    target[kStageUnits[s]] = stage_ratios[s];
    widths.stage[s] = static_cast<int64_t>(static_cast<double>(16 << s) * stage_ratios[s]);
    for (int b = 0; b < 3; ++b) {
      target[inner_unit(s, b)] = inner_ratios[s][b];
      widths.inner[s][b] = static_cast<int64_t>(static_cast<double>(16 << s) * inner_ratios[s][b]);
    }
  }
  auto algorithm = pruner({{"target_pruning_ratio", target}});
  REQUIRE(algorithm->mutator().units().size() == 12);  // every unit listed
  const test::ClosedForm full = test::resnet20_closed_form(28);
  CHECK(algorithm->full_flops() == full.flops);
  CHECK(algorithm->full_params() == static_cast<double>(full.params));

  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({4, 1, 28, 28});
  algorithm->mutator().set_choices(algorithm->prune_at(0, 1));
  const test::ClosedForm closed = test::resnet20_closed_form(28, widths);
  const ResourceReport pruned = estimate(algorithm->architecture());
  CHECK(pruned.raw_flops == closed.flops);
  CHECK(pruned.raw_params == static_cast<double>(closed.params));
  CHECK(closed.flops < 0.5 * full.flops);

  // Cut for good into a copy: the same function, the counted size for real, and the
  // algorithm keeps its full weights.
  const torch::Tensor expected = logits(algorithm->architecture(), x);
  const auto cut = algorithm->static_architecture();
  CHECK(test::num_parameters(*cut) == closed.params);
  CHECK(estimate(*cut).raw_flops == closed.flops);
  CHECK(max_difference(logits(*cut, x), expected) < 1e-5);
  CHECK(test::num_parameters(algorithm->architecture()) == full.params);
  CHECK(algorithm->widths()["backbone.layer2.1.conv1_(0, 32)_32"] == 4);

  // Padded to multiples of 8 with channels read by zero weights: larger, the same function.
  test::ResNet20Widths padded = widths;
  for (int s = 0; s < 3; ++s) {
    padded.stage[s] = (widths.stage[s] + 7) / 8 * 8;
    for (int b = 0; b < 3; ++b) padded.inner[s][b] = (widths.inner[s][b] + 7) / 8 * 8;
  }
  CHECK(padded.inner[0][0] == 8);  // 4 channels and 4 of padding
  const test::ClosedForm padded_closed = test::resnet20_closed_form(28, padded);
  const auto rounded = algorithm->static_architecture(8);
  CHECK(test::num_parameters(*rounded) == padded_closed.params);
  CHECK(estimate(*rounded).raw_flops == padded_closed.flops);
  CHECK(max_difference(logits(*rounded, x), expected) < 1e-5);
  CHECK(algorithm->widths(8)["backbone.layer2.1.conv1_(0, 32)_32"] == 8);
  CHECK(algorithm->widths(8)["backbone.layer3.0.conv2_(0, 64)_64"] == 16);
}

TEST_CASE("target_flops and target_params: one ratio for every unit, the largest within the share", "[pruning]") {
  for (const bool by_flops : {true, false}) {
    const char* key = by_flops ? "target_flops" : "target_params";
    auto algorithm = pruner({{key, 0.5}});
    const Json target = algorithm->options().target;
    REQUIRE(target.size() == 12);
    const double ratio = target.begin()->get<double>();
    for (const auto& [name, value] : target.items()) CHECK(value.get<double>() == ratio);
    auto share_at = [&](double r) {
      Json choices = Json::object();
      for (const auto& [name, value] : target.items()) choices[name] = r;
      algorithm->mutator().set_choices(choices);
      const ResourceReport report = estimate(algorithm->architecture());
      return by_flops ? report.raw_flops / algorithm->full_flops() : report.raw_params / algorithm->full_params();
    };
    INFO(key << ": ratio " << ratio);
    CHECK(share_at(ratio) <= 0.5);
    CHECK(share_at(ratio) > 0.45);
    // Largest: a visibly larger ratio keeps more than the share.
    CHECK(share_at(std::min(1.0, ratio + 0.05)) > 0.5);
  }
  CHECK_THROWS_WITH(pruner({{"target_flops", 1e-4}}), Catch::Contains("cannot be reached"));
  CHECK_THROWS_WITH(pruner({{"target_flops", 1.5}}), Catch::Contains("target_flops") && Catch::Contains("(0, 1]"));
  CHECK_THROWS_WITH(pruner({{"target_flops", 0.5}, {"target_pruning_ratio", {{kStageUnits[0], 0.5}}}}),
                    Catch::Contains("not both"));
}

TEST_CASE("sub_model rebuilds the pruned model: from ItePruneValLoop's files, and from the trained weights",
          "[pruning]") {
  test::TempDir dir;
  // "Trained" weights: random, with BN statistics and affine parameters that matter.
  auto trained = std::dynamic_pointer_cast<Model>(test::build_model(kResNet20));
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(5);
    for (auto& item : trained->named_buffers()) {
      if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 2.0);
      if (item.key().find("running_mean") != std::string::npos) item.value().normal_(0, 0.1);
    }
    for (auto& item : trained->named_parameters()) {
      if (item.key().find("bn") != std::string::npos) item.value().uniform_(0.5, 1.5);
    }
  }
  const std::string weights = dir / "trained.pth";
  CheckpointContents contents;
  contents.meta = {{"format", kCheckpointFormat}};
  contents.model = state_dict(*trained);
  write_checkpoint(weights, contents, nullptr);

  const Json pretrained = {{"type", "Pretrained"}, {"checkpoint", weights}};
  Json architecture = kResNet20;
  architecture["init_cfg"] = pretrained;
  Json target = Json::object();
  for (int s = 0; s < 3; ++s) {
    target[kStageUnits[s]] = 0.5;
    for (int b = 0; b < 3; ++b) target[inner_unit(s, b)] = 0.625;
  }
  auto algorithm = pruner({{"architecture", architecture}, {"target_pruning_ratio", target}});
  algorithm->mutator().set_choices(algorithm->prune_at(0, 1));
  torch::manual_seed(7);
  const torch::Tensor x = torch::randn({4, 1, 28, 28});
  const torch::Tensor expected = logits(algorithm->architecture(), x);
  // L1 kept some channels other than the first, or the check below would not tell.
  const Json masks = algorithm->mutator().current_masks();
  CHECK(masks[inner_unit(1, 1)] != Json(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                              17, 18, 19}));

  SECTION("ItePruneValLoop's fix_subnet.json and fix_subnet_weight.pth") {
    // Cutting a copy must not move the run's random stream (a resumed run replays it).
    torch::manual_seed(11);
    const torch::Tensor before = torch::rand({4});
    torch::manual_seed(11);
    write_fix_subnet(*algorithm, dir / "work");
    CHECK(torch::equal(torch::rand({4}), before));
    const Json fix = Json::parse(read_text_file(dir / "work/fix_subnet.json", "fix_subnet.json"));
    CHECK(fix["type"] == "ChannelMutator");
    CHECK(fix["channel_unit_cfg"]["type"] == "L1MutableChannelUnit");
    CHECK(fix["channel_unit_cfg"]["units"][kStageUnits[1]]["choice"] == 0.5);
    CHECK(fix["channel_unit_cfg"]["units"][kStageUnits[1]]["init_args"]["num_channels"] == 32);
    auto rebuilt = std::dynamic_pointer_cast<Model>(
        build({{"type", "sub_model"},
               {"cfg", kResNet20},
               {"fix_subnet", (dir / "work/fix_subnet.json")},
               {"init_cfg", {{"type", "Pretrained"}, {"checkpoint", dir / "work/fix_subnet_weight.pth"}}}}));
    REQUIRE(rebuilt);
    CHECK(max_difference(logits(*rebuilt, x), expected) < 1e-5);
  }

  SECTION("init_weight_from_supernet: L1 units pick their channels from the trained weights") {
    Json fix = kMutator;
    for (const auto& [name, ratio] : target.items()) fix["channel_unit_cfg"]["units"][name] = {{"choice", ratio}};
    auto rebuilt = std::dynamic_pointer_cast<Model>(build({{"type", "sub_model"},
                                                           {"cfg", kResNet20},
                                                           {"fix_subnet", fix},
                                                           {"init_weight_from_supernet", true},
                                                           {"init_cfg", pretrained}}));
    REQUIRE(rebuilt);
    CHECK(max_difference(logits(*rebuilt, x), expected) < 1e-5);
    CHECK_THROWS_WITH(build({{"type", "sub_model"}, {"cfg", kResNet20}, {"fix_subnet", fix},
                             {"init_weight_from_supernet", true}}),
                      Catch::Contains("init_weight_from_supernet") && Catch::Contains("init_cfg"));
  }
}

TEST_CASE("Taylor units prune at the first step by the gradients of its batch, as a plain backward ranks them",
          "[pruning][taylor]") {
  torch::manual_seed(3);
  Json mutator = kMutator;
  mutator["channel_unit_cfg"]["type"] = "TaylorMutableChannelUnit";
  auto algorithm = pruner({{"mutator_cfg", mutator}, {"target_flops", 0.5}});  // no gradient needed for the ratio
  const Batch batch{torch::randn({8, 1, 28, 28}), torch::randint(10, {8}), torch::Tensor()};

  // A plain LibTorch backward of the same loss on a copy with the same weights.
  auto plain = std::dynamic_pointer_cast<Model>(build(kResNet20));
  REQUIRE(plain);
  load_state_dict(*plain, state_dict(algorithm->architecture()), /*strict=*/true, "the pruner");
  plain->train();
  total_loss(plain->loss(batch)).backward();
  auto& conv = dynamic_cast<nn::WeightedOp&>(nn::find_module(*plain, "backbone.layer2.0.conv1"));
  const torch::Tensor scores = (conv.weight.detach() * conv.weight.grad()).flatten(1).sum(1).square();

  auto params = algorithm->parameters();
  OptimWrapper optim(std::make_shared<torch::optim::SGD>(params, torch::optim::SGDOptions(0.0)), params);
  algorithm->train();
  algorithm->train_step(batch, optim);
  const std::string name = inner_unit(1, 0);
  const auto& unit = algorithm->mutator().unit(name);
  REQUIRE(unit.width() < 32);
  // The unit's only conv making its channels is layer2.0.conv1: its top-width scores, in index order.
  const torch::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, /*descending=*/true));
  const torch::Tensor top = std::get<0>(order.narrow(0, 0, unit.width()).sort());
  const std::vector<int64_t> expected(top.data_ptr<int64_t>(), top.data_ptr<int64_t>() + top.numel());
  CHECK(algorithm->mutator().current_masks()[name].get<std::vector<int64_t>>() == expected);
  // Not a prefix: the gradients chose.
  std::vector<int64_t> prefix(static_cast<size_t>(unit.width()));
  std::iota(prefix.begin(), prefix.end(), 0);
  CHECK(expected != prefix);
  CHECK(algorithm->flops_ratio() <= 0.5);
}
