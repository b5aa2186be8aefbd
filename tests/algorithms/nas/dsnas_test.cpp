// DSNAS: the mutator loss and the α gradient against closed forms on a tiny supernet of two
// OneHotMutableOPs over convolutions, the FLOPs table against the estimator, the stages
// (pretrain, search, finetune) and the fix to argmax, and a tiny `razor train` that resumes
// exactly across the fix.
#include "algorithms/nas/dsnas.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/register_all.h"
#include "components/estimators/resource_estimator.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/conv.h"
#include "components/nn/flatten.h"
#include "components/nn/linear.h"
#include "components/nn/pooling.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/optim_wrapper_dict.h"
#include "tests/datasets/temp_dir.h"
#include "tests/process.h"

using namespace razor;

namespace {

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in, out, k).with_padding(k / 2));
}

/// x (N x 2 x 8 x 8) -> m1 {k3, k1: 2 -> 3} -> m2 {k3, k1, k5: 3 -> 3} -> average pool ->
/// linear 3 -> 4; loss = cross entropy.
class TinyOneHotNet : public Model {
 public:
  explicit TinyOneHotNet(double fix_threshold) {
    Candidates first, second;
    first.emplace_back("k3", conv(2, 3, 3));
    first.emplace_back("k1", conv(2, 3, 1));
    second.emplace_back("k3", conv(3, 3, 3));
    second.emplace_back("k1", conv(3, 3, 1));
    second.emplace_back("k5", conv(3, 3, 5));
    m1 = register_module("m1", std::make_shared<OneHotMutableOP>(std::move(first), fix_threshold));
    m2 = register_module("m2", std::make_shared<OneHotMutableOP>(std::move(second), fix_threshold));
    pool = register_module("pool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    flatten = register_module("flatten", std::make_shared<nn::Flatten>());
    fc = register_module("fc", std::make_shared<nn::Linear>(3, 4));
    torch::NoGradGuard no_grad;
    for (auto& p : parameters()) p.normal_(0.0, 0.5);
  }
  torch::Tensor forward_tensor(const torch::Tensor& x) override {
    return (*fc)((*flatten)((*pool)((*m2)((*m1)(x)))));
  }
  LossMap loss(const Batch& batch) override {
    return {{"loss",
             torch::nn::functional::cross_entropy(forward_tensor(batch.inputs), batch.targets)}};
  }
  torch::Tensor predict(const Batch& batch) override { return forward_tensor(batch.inputs); }

  std::shared_ptr<OneHotMutableOP> m1, m2;
  std::shared_ptr<nn::AdaptiveAvgPool2d> pool;
  std::shared_ptr<nn::Flatten> flatten;
  std::shared_ptr<nn::Linear> fc;
};

struct Tiny {
  std::shared_ptr<TinyOneHotNet> net;
  std::shared_ptr<DSNAS> dsnas;
  torch::Tensor alpha1, alpha2;
};

/// FLOPs in K at 1 x 2 x 8 x 8, so that each op has an exact closed form.
DSNASOptions tiny_options(double flops_constraints = 0.0) {
  return DSNASOptions()
      .with_pretrain_epochs(1)
      .with_finetune_epochs(3)
      .with_flops_constraints(flops_constraints)
      .with_estimator(ResourceEstimatorOptions().with_input_shape({1, 2, 8, 8}).with_units("K"));
}

/// The same net (weights from torch seed 0) and α for the same arguments; samples come from
/// the mutator's generator (seed 7).
Tiny tiny(DSNASOptions options = tiny_options(), double fix_threshold = 1.0,
          std::vector<double> alpha1 = {0.3, -0.2}, std::vector<double> alpha2 = {0.1, 0.5, -0.4}) {
  torch::manual_seed(0);
  Tiny t;
  t.net = std::make_shared<TinyOneHotNet>(fix_threshold);
  NasMutatorOptions mutator;
  mutator.seed = 7;
  t.dsnas = std::make_shared<DSNAS>(t.net, std::make_shared<NasMutator>(mutator), options);
  const auto alphas = t.dsnas->mutator().arch_params();
  REQUIRE(alphas.size() == 2);
  t.alpha1 = alphas[0];
  t.alpha2 = alphas[1];
  torch::NoGradGuard no_grad;
  t.alpha1.copy_(torch::tensor(alpha1));
  t.alpha2.copy_(torch::tensor(alpha2));
  return t;
}

Batch tiny_batch() {
  torch::manual_seed(3);
  Batch batch;
  batch.inputs = torch::randn({6, 2, 8, 8});
  batch.targets = torch::randint(4, {6}, torch::kLong);
  return batch;
}

std::vector<double> softmax(const std::vector<double>& a) {
  double sum = 0;
  for (double v : a) sum += std::exp(v);
  std::vector<double> p;
  for (double v : a) p.push_back(std::exp(v) / sum);
  return p;
}

std::vector<double> values(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::shared_ptr<OptimWrapper> sgd(const std::vector<torch::Tensor>& params, double lr) {
  auto optimizer = std::make_shared<torch::optim::SGD>(params, torch::optim::SGDOptions(lr));
  return std::make_shared<OptimWrapper>(optimizer, params);
}

OptimWrapperDict wrappers(Tiny& t, double weight_lr, double alpha_lr) {
  return OptimWrapperDict({{"architecture", sgd(t.net->parameters(), weight_lr)},
                           {"mutator", sgd(t.dsnas->mutator().parameters(), alpha_lr)}});
}

// Closed forms of the tiny net's FLOPs (mmcv conventions, per sample, in K): a k x k conv of
// Cin -> Cout at 8 x 8 is k²·Cin·Cout·64 + Cout·64 (bias); the pool counts its input (3·64),
// the linear numel(input)·out (3·4).
const double kBaseRaw = 3 * 64 + 3 * 4;
double conv_raw(int64_t k, int64_t in, int64_t out) {
  return double(k * k * in * out * 64 + out * 64);
}
const std::vector<double> kFirstRaw = {conv_raw(3, 2, 3), conv_raw(1, 2, 3)};
const std::vector<double> kSecondRaw = {conv_raw(3, 3, 3), conv_raw(1, 3, 3), conv_raw(5, 3, 3)};
double in_k(double raw) { return std::round(raw) / 1e3; }  // all raw counts here are integers

std::shared_ptr<Model> build_model(const std::string& file, uint64_t seed,
                                   const Json& overrides = Json::object()) {
  register_all();
  auto config = std::make_shared<Config>(load_config(file));
  Json& model = config->tree["model"];
  model.merge_patch(overrides);
  BuildContext context;
  context.seed = seed;
  Args args(model, "model", config);
  return build_model_as<Model>(args, context, "a model");
}

const std::string kFmnistConfig =
    std::string(RAZOR_SOURCE_DIR) + "/configs/nas/dsnas_shufflenet_supernet_fmnist.toml";

}  // namespace

TEST_CASE("DSNAS: the FLOPs table counts every candidate, and a subnet as the estimator does",
          "[dsnas]") {
  Tiny t = tiny();
  for (size_t i = 0; i < 2; ++i) {
    CHECK(t.dsnas->candidate_flops("m1", std::vector<std::string>{"k3", "k1"}[i]) ==
          in_k(kFirstRaw[i]));
  }
  for (size_t i = 0; i < 3; ++i) {
    CHECK(t.dsnas->candidate_flops("m2", std::vector<std::string>{"k3", "k1", "k5"}[i]) ==
          in_k(kSecondRaw[i]));
  }
  CHECK(t.dsnas->candidate_flops("m1", "k3") == 3.648);
  CHECK_THROWS_WITH(t.dsnas->candidate_flops("m3", "k3"),
                    Catch::Contains("no OneHotMutableOP is named \"m3\""));
  for (int draw = 0; draw < 6; ++draw) {
    t.dsnas->sample_subnet();
    const size_t k1 = t.net->m1->sampled_index(), k2 = t.net->m2->sampled_index();
    CHECK(t.dsnas->subnet_flops() == in_k(kBaseRaw + kFirstRaw[k1] + kSecondRaw[k2]));
    // The estimator on the same subnet, fixed in another copy of the net.
    Tiny fixed = tiny();
    fixed.net->m1->fix_chosen(t.net->m1->candidate_names()[k1]);
    fixed.net->m2->fix_chosen(t.net->m2->candidate_names()[k2]);
    ResourceEstimator estimator(t.dsnas->options().estimator);
    CHECK(estimator.estimate(*fixed.net).flops == t.dsnas->subnet_flops());
  }
}

TEST_CASE("DSNAS: the arch loss is Σ log p[k] of the sampled one-hot ops", "[dsnas]") {
  Tiny t = tiny(tiny_options(1e9));
  const auto p1 = softmax({0.3, -0.2}), p2 = softmax({0.1, 0.5, -0.4});
  std::vector<int> seen(3, 0);
  for (int draw = 0; draw < 30; ++draw) {
    t.dsnas->sample_subnet();
    const size_t k1 = t.net->m1->sampled_index(), k2 = t.net->m2->sampled_index();
    ++seen[k2];
    const torch::Tensor w1 = t.net->m1->arch_weights(), w2 = t.net->m2->arch_weights();
    CHECK(values(w1)[k1] == 1.0);
    CHECK(w1.sum().item<double>() == 1.0);
    CHECK(values(w2)[k2] == 1.0);
    CHECK(w2.sum().item<double>() == 1.0);
    const LossMap losses = t.dsnas->mutator_loss();
    REQUIRE(losses.size() == 1);  // 1e9 K FLOPs: no FLOPs loss
    CHECK(losses[0].first == "arch_loss");
    CHECK(losses[0].second.item<double>() ==
          Approx(std::log(p1[k1]) + std::log(p2[k2])).epsilon(1e-6));
  }
  for (int n : seen) CHECK(n > 0);  // every op of m2 drawn (p ≥ 0.22 each)
}

TEST_CASE("DSNAS: the FLOPs loss applies at and above the constraint, as 1e-2·Σ p[k]·FLOPs",
          "[dsnas]") {
  Tiny probe = tiny();
  probe.dsnas->sample_subnet();
  const size_t k1 = probe.net->m1->sampled_index(), k2 = probe.net->m2->sampled_index();
  const double subnet = in_k(kBaseRaw + kFirstRaw[k1] + kSecondRaw[k2]);
  REQUIRE(probe.dsnas->subnet_flops() == subnet);
  const auto p1 = softmax({0.3, -0.2}), p2 = softmax({0.1, 0.5, -0.4});
  const double expected = 1e-2 * (p1[k1] * in_k(kFirstRaw[k1]) + p2[k2] * in_k(kSecondRaw[k2]));

  for (double constraint : {subnet, subnet - 0.001, 0.0}) {
    Tiny t = tiny(tiny_options(constraint));
    t.dsnas->sample_subnet();  // the same seed draws the same subnet
    REQUIRE(t.net->m1->sampled_index() == k1);
    REQUIRE(t.net->m2->sampled_index() == k2);
    const LossMap losses = t.dsnas->mutator_loss();
    REQUIRE(losses.size() == 2);
    CHECK(losses[1].first == "flops_loss");
    CHECK(losses[1].second.item<double>() == Approx(expected).epsilon(1e-6));
  }
  Tiny above = tiny(tiny_options(subnet + 0.001));
  above.dsnas->sample_subnet();
  const LossMap losses = above.dsnas->mutator_loss();
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].first == "arch_loss");
}

TEST_CASE("DSNAS: after the weight step, α steps on Σ ∂L/∂Z · ∇α log p[k] + ∇α flops_loss",
          "[dsnas]") {
  const double alpha_lr = 1.0, weight_lr = 0.05;
  const Batch batch = tiny_batch();
  for (double constraint : {0.0, 1e9}) {
    INFO("flops_constraints " << constraint);
    Tiny a = tiny(tiny_options(constraint)), b = tiny(tiny_options(constraint));
    a.dsnas->set_epoch_source([] { return 1; });  // pretrain_epochs <= 1 < finetune_epochs
    // b: the same draw, loss and backward by hand, for ∂L/∂Z and the weights' gradients.
    b.dsnas->sample_subnet();
    b.dsnas->train();
    total_loss(b.dsnas->loss(batch)).backward();
    const size_t k1 = b.net->m1->sampled_index(), k2 = b.net->m2->sampled_index();
    const double s1 = b.net->m1->arch_weights().grad().sum().item<double>();
    const double s2 = b.net->m2->arch_weights().grad().sum().item<double>();
    CHECK(std::abs(s1) > 1e-4);
    CHECK(std::abs(s2) > 1e-4);

    OptimWrapperDict optim = wrappers(a, weight_lr, alpha_lr);
    a.dsnas->train();
    const LossMap out = a.dsnas->train_step(batch, optim);
    REQUIRE(a.net->m1->sampled_index() == k1);
    REQUIRE(a.net->m2->sampled_index() == k2);
    CHECK(out.back().first == "loss");

    // g = (s + [FLOPs on] 1e-2·FLOPs_k·p_k)·(e_k − p): the score term scaled by s (MMRazor's
    // handle_grads, applied before the step), and the FLOPs term unscaled.
    auto expected_grad = [&](const std::vector<double>& alpha, size_t k, double s, double flops) {
      const auto p = softmax(alpha);
      const double scale = s + (constraint == 0.0 ? 1e-2 * flops * p[k] : 0.0);
      std::vector<double> g;
      for (size_t i = 0; i < p.size(); ++i) g.push_back(scale * ((i == k ? 1.0 : 0.0) - p[i]));
      return g;
    };
    const auto g1 = expected_grad({0.3, -0.2}, k1, s1, in_k(kFirstRaw[k1]));
    const auto g2 = expected_grad({0.1, 0.5, -0.4}, k2, s2, in_k(kSecondRaw[k2]));
    const auto after1 = values(a.alpha1), after2 = values(a.alpha2);
    const std::vector<double> before1 = {0.3, -0.2}, before2 = {0.1, 0.5, -0.4};
    for (size_t i = 0; i < 2; ++i)
      CHECK((before1[i] - after1[i]) / alpha_lr == Approx(g1[i]).margin(1e-5));
    for (size_t i = 0; i < 3; ++i)
      CHECK((before2[i] - after2[i]) / alpha_lr == Approx(g2[i]).margin(1e-5));

    // The weights took one SGD step on the same supernet loss.
    const auto& wa = static_cast<nn::Conv2d&>(a.net->m2->candidate(k2)).weight;
    const auto& wb = static_cast<nn::Conv2d&>(b.net->m2->candidate(k2)).weight;
    CHECK(torch::allclose(wa, wb - weight_lr * wb.grad(), 1e-5, 1e-6));
    bool logged = false;
    for (const auto& item : out) logged = logged || item.first == "mutator.arch_loss";
    CHECK(logged);
  }
}

TEST_CASE(
    "DSNAS: α stays during pretraining, and the subnet is fixed to argmax α at finetune_epochs",
    "[dsnas]") {
  const Batch batch = tiny_batch();
  // argmax: m1 "k1", m2 "k5".
  Tiny t = tiny(tiny_options(), 1.0, {-0.5, 0.7}, {0.2, -0.1, 0.9});
  const auto alpha1 = values(t.alpha1), alpha2 = values(t.alpha2);
  int64_t epoch = 0;
  t.dsnas->set_epoch_source([&epoch] { return epoch; });
  OptimWrapperDict optim = wrappers(t, 0.0, 1.0);  // weights stay: outputs are comparable
  t.dsnas->train();
  t.dsnas->train_step(batch, optim);  // epoch 0 < pretrain_epochs
  CHECK(values(t.alpha1) == alpha1);
  CHECK(values(t.alpha2) == alpha2);
  CHECK(t.dsnas->is_supernet());

  const torch::Tensor x = batch.inputs;
  torch::Tensor supernet, by_hand;
  {
    torch::NoGradGuard no_grad;
    t.dsnas->eval();
    supernet = t.dsnas->forward_tensor(x);  // eval runs the argmax ops
    // The subnet by hand: conv k1 then conv k5, average pool, linear.
    auto& c1 = static_cast<nn::Conv2d&>(t.net->m1->candidate("k1"));
    auto& c5 = static_cast<nn::Conv2d&>(t.net->m2->candidate("k5"));
    namespace F = torch::nn::functional;
    torch::Tensor y = F::conv2d(x, c1.weight, F::Conv2dFuncOptions().bias(c1.bias));
    y = F::conv2d(y, c5.weight, F::Conv2dFuncOptions().bias(c5.bias).padding(2)).mean({2, 3});
    by_hand = torch::addmm(t.net->fc->bias, y, t.net->fc->weight.t());
  }
  CHECK(torch::allclose(supernet, by_hand, 1e-5, 1e-6));
  const size_t before = t.dsnas->named_parameters().size();

  epoch = 3;  // finetune_epochs
  t.dsnas->train();
  t.dsnas->train_step(batch, optim);
  CHECK(values(t.alpha1) == alpha1);  // α no longer steps
  CHECK(values(t.alpha2) == alpha2);
  CHECK_FALSE(t.dsnas->is_supernet());
  CHECK(t.net->m1->is_fixed());
  CHECK(t.net->m2->is_fixed());
  CHECK(t.net->m1->current_choice() == "k1");
  CHECK(t.net->m2->current_choice() == "k5");
  CHECK(t.dsnas->named_parameters().size() == before - 2 * 3);  // 3 dropped convs
  {
    torch::NoGradGuard no_grad;
    t.dsnas->eval();
    CHECK(torch::allclose(t.dsnas->forward_tensor(x), by_hand, 1e-5, 1e-6));
    t.dsnas->train();
    CHECK(torch::allclose(t.dsnas->forward_tensor(x), by_hand, 1e-5, 1e-6));
  }
  // The checkpointed state: fixed, and to what.
  const Json state = t.dsnas->extra_state()["dsnas"];
  CHECK(state["supernet"] == false);
  CHECK(state["fixed"] == Json{{"m1", "k1"}, {"m2", "k5"}});
}

TEST_CASE(
    "DSNAS: a confident mutable fixes itself to its argmax during the search, and leaves the "
    "mutator loss",
    "[dsnas]") {
  const Batch batch = tiny_batch();
  // p(m1) = (0.982, 0.018): top-1 leads by 0.96 >= 0.3. MMRazor would keep choices[1] ("k1").
  Tiny t = tiny(tiny_options(1e9), 0.3, {2.0, -2.0}, {0.1, 0.5, -0.4});
  t.dsnas->sample_subnet();
  CHECK(t.net->m1->is_fixed());
  CHECK(t.net->m1->current_choice() == "k3");
  CHECK_FALSE(t.net->m2->is_fixed());
  const size_t k2 = t.net->m2->sampled_index();
  const LossMap losses = t.dsnas->mutator_loss();
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].second.item<double>() ==
        Approx(std::log(softmax({0.1, 0.5, -0.4})[k2])).epsilon(1e-6));
  CHECK(t.dsnas->subnet_flops() == in_k(kBaseRaw + kFirstRaw[0] + kSecondRaw[k2]));

  // A step moves only the free mutable's α.
  Tiny s = tiny(tiny_options(1e9), 0.3, {2.0, -2.0}, {0.1, 0.5, -0.4});
  const auto alpha1 = values(s.alpha1), alpha2 = values(s.alpha2);
  s.dsnas->set_epoch_source([] { return 1; });
  OptimWrapperDict optim = wrappers(s, 0.01, 1.0);
  s.dsnas->train();
  s.dsnas->train_step(batch, optim);
  CHECK(values(s.alpha1) == alpha1);
  CHECK(values(s.alpha2) != alpha2);

  // The fix survives a checkpoint: a fresh supernet takes the same state and tensors.
  Tiny fresh = tiny(tiny_options(1e9), 0.3);
  fresh.dsnas->load_extra_state(s.dsnas->extra_state());
  CHECK(fresh.net->m1->is_fixed());
  CHECK(fresh.net->m1->current_choice() == "k3");
  CHECK(fresh.dsnas->is_supernet());
  CHECK(fresh.dsnas->named_parameters().keys() == s.dsnas->named_parameters().keys());
  load_state_dict(*fresh.dsnas, state_dict(*s.dsnas), /*strict=*/true, "test");
}

TEST_CASE("DSNAS builds from the Fashion-MNIST config, bad tables are clear errors", "[dsnas]") {
  auto model = build_model(kFmnistConfig, 5);
  auto dsnas = std::dynamic_pointer_cast<DSNAS>(model);
  REQUIRE(dsnas);
  CHECK(dsnas->options().pretrain_epochs == 1);
  CHECK(dsnas->options().finetune_epochs == 3);
  CHECK(dsnas->options().flops_constraints == 8.0);
  CHECK(dsnas->optim_wrapper_names() == std::vector<std::string>{"architecture", "mutator"});
  const auto& groups = dsnas->mutator().search_groups();
  REQUIRE(groups.size() == 6);
  for (const auto& g : groups) {
    auto* op = dynamic_cast<OneHotMutableOP*>(g.members.front());
    REQUIRE(op);
    CHECK(op->fix_threshold() == 0.3);
    CHECK(g.arch_param.defined());
  }
  // The subnet FLOPs from the table equal the estimator on that subnet, fixed in a copy.
  dsnas->sample_subnet();
  const Json subnet = dsnas->mutator().subnet_of(dsnas->mutator().current_choices());
  auto copy = std::dynamic_pointer_cast<DSNAS>(build_model(kFmnistConfig, 5));
  load_fix_subnet(copy->architecture(), subnet);
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}));
  const double flops = estimator.estimate(copy->architecture()).flops;
  CHECK(flops == dsnas->subnet_flops());
  CHECK(flops > 6.8);
  CHECK(flops < 9.3);

  const std::string spos =
      std::string(RAZOR_SOURCE_DIR) + "/configs/nas/spos_shufflenet_supernet_fmnist.toml";
  CHECK_THROWS_WITH(build_model(spos, 0, Json{{"type", "DSNAS"}}),
                    Catch::Contains("DSNAS searches OneHotMutableOPs only"));
  CHECK_THROWS_WITH(
      build_model(kFmnistConfig, 0, Json{{"pretrain_epochs", 3}}),
      Catch::Contains("model.finetune_epochs") && Catch::Contains("must be above pretrain_epochs"));
}

TEST_CASE("DSNAS trains with `razor train`, fixes the subnet, and resumes exactly across the fix",
          "[dsnas][e2e]") {
  using razor::test::razor_command;
  using razor::test::read_file;
  razor::test::TempDir dir;
  const std::string config =
      std::string(RAZOR_TEST_DATA_DIR) + "/configs/nas/tiny_dsnas_supernet.toml";
  auto train = [&](const std::string& work_dir, int epochs, bool resume) {
    const std::string log = dir / (work_dir + "_" + std::to_string(epochs) + ".log");
    const std::string command =
        razor_command("train " + config + " --work-dir " + (dir / work_dir) +
                      " --cfg-options train_cfg.max_epochs=" + std::to_string(epochs) +
                      (resume ? " --resume" : ""));
    const int code = razor::test::run(command, log);
    const std::string output = read_file(log);
    INFO(command << "\n" << output);
    REQUIRE(code == 0);
    return output;
  };
  // 3 epochs at once: α learns in epoch 1, the subnet is fixed at the start of epoch 2.
  const std::string whole = train("whole", 3, false);
  CHECK(whole.find("fixed for the finetune stage") != std::string::npos);
  // 1 + 1 + 1 epochs: resumed once before the fix, once after it.
  train("parts", 1, false);
  CHECK(train("parts", 2, true).find("fixed for the finetune stage") != std::string::npos);
  CHECK(train("parts", 3, true).find("fixed for the finetune stage") == std::string::npos);

  for (const std::string name : {"epoch_1.pth", "epoch_2.pth", "epoch_3.pth"}) {
    INFO(name);
    CheckpointReader a(dir / ("whole/" + name)), b(dir / ("parts/" + name));
    REQUIRE(a.contents().model.size() == b.contents().model.size());
    for (size_t i = 0; i < a.contents().model.size(); ++i) {
      INFO(a.contents().model[i].first);
      CHECK(a.contents().model[i].first == b.contents().model[i].first);
      CHECK(torch::equal(a.contents().model[i].second, b.contents().model[i].second));
    }
    CHECK(a.contents().meta["model_state"] == b.contents().meta["model_state"]);
  }
  CheckpointReader searched(dir / "whole/epoch_1.pth"), fixed(dir / "whole/epoch_2.pth"),
      last(dir / "whole/epoch_3.pth");
  CHECK(searched.contents().meta["model_state"]["dsnas"]["supernet"] == true);
  const Json state = fixed.contents().meta["model_state"]["dsnas"];
  CHECK(state["supernet"] == false);
  REQUIRE(state["fixed"].size() == 3);
  // Fixed to argmax α (α at the end of the search; it stays put while finetuning), and the
  // unchosen candidates are gone from the checkpoint.
  CHECK(fixed.contents().model.size() < searched.contents().model.size());
  std::map<std::string, torch::Tensor> alphas;
  for (const auto& item : last.contents().model) {
    if (item.first.rfind("mutator.arch_params.", 0) == 0) alphas[item.first] = item.second;
  }
  REQUIRE(alphas.size() == 3);
  for (const auto& item : searched.contents().model) {
    if (alphas.count(item.first)) CHECK(torch::equal(alphas[item.first], item.second));
  }
  const std::vector<std::string> names = {"shuffle_3x3", "shuffle_5x5", "shuffle_7x7",
                                          "shuffle_xception"};
  const std::vector<std::string> mutables = {"backbone.layers.0.0", "backbone.layers.1.0",
                                             "backbone.layers.1.1"};
  for (size_t g = 0; g < 3; ++g) {
    const int64_t argmax =
        alphas["mutator.arch_params.module_" + std::to_string(g)].argmax().item<int64_t>();
    CHECK(state["fixed"][mutables[g]] == names[static_cast<size_t>(argmax)]);
  }
  // α moved during the search epoch (from randn·1e-3).
  CHECK(alphas["mutator.arch_params.module_0"].abs().max().item<double>() > 0.01);

  // The dumped subnet tests, with the final weights, to the last validation score.
  const std::string subnet = dir / "whole/subnet_epoch_3.yaml";
  REQUIRE(std::filesystem::exists(subnet));
  const int code =
      razor::test::run(razor_command("test " + config + " " + (dir / "whole/epoch_3.pth") +
                                     " --subnet " + subnet + " --out " + (dir / "test.json")),
                       dir / "test.log");
  INFO(read_file(dir / "test.log"));
  REQUIRE(code == 0);
  double last_val = -1;
  std::istringstream lines(read_file(dir / "whole/scalars.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const Json record = Json::parse(line);
    if (record["mode"] == "val") last_val = record["accuracy/top1"].get<double>();
  }
  CHECK(Json::parse(read_file(dir / "test.json"))["metrics"]["accuracy/top1"].get<double>() ==
        Approx(last_val).epsilon(1e-12));
}
