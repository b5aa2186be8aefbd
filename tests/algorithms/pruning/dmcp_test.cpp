// DMCP: the groups of a unit and the FLOPs losses against MMRazor's closed forms; the
// mutator's subnets (max, min, random, direct) and expected widths at hand-set architecture
// parameters, its BatchNorm gates against the ungated output times the keep probabilities;
// the expected FLOPs equal to the estimator's count at full width, near it at the narrowest;
// and a training step of the algorithm stepping both optimisers.
#include "algorithms/pruning/dmcp.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "apps/register_all.h"
#include "components/estimators/resource_estimator.h"
#include "components/nn/nn.h"
#include "engine/optim_wrapper_dict.h"
#include "tests/components/architectures/build.h"

using namespace razor;

namespace {

std::shared_ptr<DMCP> resnet20_dmcp(const Json& extra = Json::object()) {
  register_all();
  torch::manual_seed(0);
  Json table = {{"type", "DMCP"},
                {"architecture", test::classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)},
                {"target_flops", 15.0},
                {"mutator_cfg", {{"parse_cfg", {{"type", "ChannelAnalyzer"}, {"demo_input", {1, 1, 28, 28}}}}}}};
  table.update(extra);
  auto dmcp = std::dynamic_pointer_cast<DMCP>(test::build_model(table));
  REQUIRE(dmcp);
  return dmcp;
}

const std::string kStage3 = "backbone.layer3.0.conv2_(0, 64)_64";

size_t index_of(const ChannelMutator& m, const std::string& name) {
  for (size_t i = 0; i < m.units().size(); ++i) {
    if (m.units()[i]->name() == name) return i;
  }
  FAIL("no unit " << name);
  return 0;
}

}  // namespace

TEST_CASE("DMCP's groups and FLOPs losses are MMRazor's closed forms", "[pruning][dmcp]") {
  const std::array<double, 3> cfg = {0.1, 1.0, 0.05};
  for (const auto& [c, size, groups, min_ch] : std::vector<std::array<int64_t, 4>>{
           {32, 1, 18, 14}, {64, 3, 18, 10}, {96, 4, 18, 24}, {1280, 64, 18, 128}, {16, 0, 18, 16}}) {
    const DMCPGroups g = dmcp_groups(c, cfg);
    CHECK(g.group_size == size);
    CHECK(g.num_groups == groups);
    CHECK(g.min_ch == min_ch);
  }

  auto loss = [](double e, const char* type) { return dmcp_flops_loss(torch::tensor(e), 100, type).item<double>(); };
  CHECK(loss(50, "log_l1") == Approx(std::log(50.0)));    // below 0.95 T
  CHECK(loss(97, "log_l1") == 0);                          // in [0.95 T, T)
  CHECK(loss(150, "log_l1") == Approx(std::log(55.0)));   // above: distance to 0.95 T
  CHECK(loss(400, "log_l1") == Approx(std::log(0.1 * 305)));  // |E - T| > 200: r = 0.1
  CHECK(loss(130, "l1") == Approx(30));
  CHECK(loss(130, "l2") == Approx(900));
  CHECK_THROWS_WITH(loss(1, "huber"), Catch::Contains("flops_loss_type"));
}

TEST_CASE("DMCPChannelMutator samples chains of groups and gates its BatchNorms", "[pruning][dmcp]") {
  auto dmcp = resnet20_dmcp();
  DMCPChannelMutator& m = dmcp->dmcp_mutator();
  CHECK(m.options().unit_type == "DMCPChannelUnit");
  CHECK(dmcp->named_parameters().contains("mutator.0"));
  const size_t stage3 = index_of(m, kStage3);
  CHECK(m.sample_subnet_choices("max")[kStage3] == 64);
  CHECK(m.sample_subnet_choices("min")[kStage3] == 10);
  for (int i = 0; i < 20; ++i) {
    const int64_t w = m.sample_subnet_choices("random")[kStage3].get<int64_t>();
    CHECK((w - 10) % 3 == 0);
    CHECK(w >= 10);
    CHECK(w <= 64);
  }
  // a = 0: every group kept (p = 1); a large: none after the first draw.
  CHECK(m.sample_subnet_choices("direct")[kStage3] == 64);
  CHECK(m.expected_channels()[stage3].item<double>() == Approx(64));
  {
    torch::NoGradGuard no_grad;
    m.arch_param(stage3).fill_(0);
    m.arch_param(stage3)[0].fill_(std::log(2.0));  // every group kept with probability 1/2
  }
  CHECK(m.expected_channels()[stage3].item<double>() == Approx(10 + 3 * 18 * 0.5));
  {
    torch::NoGradGuard no_grad;
    m.arch_param(stage3).fill_(50);
  }
  CHECK(m.sample_subnet_choices("direct")[kStage3] == 10);
  CHECK(m.expected_channels()[stage3].item<double>() == Approx(10).margin(1e-6));

  // The gate: each group of the BatchNorm's output times its probability.
  {
    torch::NoGradGuard no_grad;
    m.arch_param(stage3).fill_(0);
    m.arch_param(stage3)[1].fill_(std::log(4.0));  // groups 1.. kept with 1/4
  }
  auto& bn = *dmcp->architecture().named_modules()["backbone.layer3.0.bn2"]->as<nn::BatchNorm2d>();
  m.set_choices(m.sample_subnet_choices("max"));
  bn.eval();
  const torch::Tensor x = torch::randn({2, 64, 3, 3});
  m.set_gated(false);
  const torch::Tensor plain = bn(x);
  m.set_gated(true);
  const torch::Tensor gated = bn(x);
  m.set_gated(false);
  CHECK(torch::allclose(gated.narrow(1, 0, 13), plain.narrow(1, 0, 13)));  // min_ch and group 0
  CHECK(torch::allclose(gated.narrow(1, 13, 51), plain.narrow(1, 13, 51) * 0.25));
}

TEST_CASE("DMCP's expected FLOPs: the estimator's at full width, near it at the narrowest", "[pruning][dmcp]") {
  auto dmcp = resnet20_dmcp();
  DMCPChannelMutator& m = dmcp->dmcp_mutator();
  dmcp->eval();
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}).with_units(""));
  Model& arch = dmcp->architecture();
  auto backbone_flops = [&] {
    torch::NoGradGuard no_grad;
    double total = 0;
    for (const auto& layer :
         estimator.estimate_report(arch, [&](const torch::Tensor& x) { return arch.forward_tensor(x); }).layers) {
      if (layer.path.rfind("backbone.", 0) == 0) total += layer.flops;
    }
    return total / 1e6;
  };
  const double full = backbone_flops();
  CHECK(dmcp->expected_mflops().item<double>() == Approx(full).epsilon(1e-9));
  CHECK(dmcp->mflops_of(m.sample_subnet_choices("max")) == Approx(full));
  // All groups pruned: the expected count follows the convs and norms exactly, the
  // activations stay at full width.
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < m.units().size(); ++i) m.arch_param(i).fill_(50);
  }
  const Json min = m.sample_subnet_choices("min");
  const double narrow = dmcp->mflops_of(min);
  CHECK(narrow < 0.8 * full);
  CHECK(dmcp->expected_mflops().item<double>() == Approx(narrow).epsilon(0.05));
  CHECK(dmcp->expected_mflops().item<double>() >= narrow);
  CHECK(dmcp->expected_subnet() == min);
  // The expected FLOPs have a gradient in every prunable unit's parameters.
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < m.units().size(); ++i) m.arch_param(i).fill_(0.1);
  }
  dmcp->expected_mflops().backward();
  CHECK(m.arch_param(index_of(m, kStage3)).grad().abs().sum().item<double>() > 0);
}

TEST_CASE("A DMCP step trains the sandwich and, at its interval, the architecture parameters", "[pruning][dmcp]") {
  // A heavy FLOPs loss, so that its step outweighs the task loss's.
  auto dmcp = resnet20_dmcp(
      {{"arch_start_train", -1}, {"arch_train_freq", 1}, {"distillation_times", 0}, {"flop_loss_weight", 100.0},
       {"target_flops", 5.0}});
  std::vector<torch::Tensor> weights = dmcp->architecture().parameters();
  std::vector<torch::Tensor> arch = dmcp->dmcp_mutator().arch_module()->parameters();
  auto sgd = [](const std::vector<torch::Tensor>& p, double lr) {
    return std::make_shared<OptimWrapper>(std::make_shared<torch::optim::SGD>(p, torch::optim::SGDOptions(lr)), p);
  };
  OptimWrapperDict wrappers({{"architecture", sgd(weights, 0.01)}, {"mutator", sgd(arch, 0.5)}});
  const size_t stage3 = index_of(dmcp->mutator(), kStage3);
  {
    torch::NoGradGuard no_grad;
    for (auto& a : arch) a.fill_(0.5);  // off the clamp at 0, where the gradient stops
  }
  const torch::Tensor before = arch[stage3].detach().clone();
  dmcp->train();
  const Batch batch{torch::randn({8, 1, 28, 28}), torch::randint(10, {8}), torch::Tensor()};
  const LossMap losses = dmcp->train_step(batch, wrappers);
  CHECK(dmcp->arch_training());
  std::map<std::string, double> logged;
  for (const auto& [key, value] : losses) logged[key] = value.item<double>();
  CHECK(logged.count("max_subnet.loss"));
  CHECK(logged.count("min_subnet.loss"));
  CHECK(logged.count("direct_subnet.loss"));
  CHECK(logged.count("flops.loss"));
  CHECK(logged["expected_mflops"] > 5);  // above the target
  // The FLOPs loss pushed the probabilities down: the parameters grew.
  CHECK((arch[stage3] - before).sum().item<double>() > 0);
  CHECK(dmcp->optim_wrapper_names() == std::vector<std::string>{"architecture", "mutator"});
}
