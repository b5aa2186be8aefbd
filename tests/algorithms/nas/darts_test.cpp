#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "algorithms/nas/darts.h"
#include "apps/register_all.h"
#include "apps/static_export.h"
#include "components/mutables/mutable_op.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/activation.h"
#include "components/nn/linear.h"
#include "components/nn/sequential.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/checkpoint.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

/// out = p0·(W0 x + b0) + p1·tanh(W1 x + b1), p = softmax(α); loss = mean((out − y)²).
class TinyDartsNet : public Model {
 public:
  TinyDartsNet() {
    Candidates candidates;
    candidates.emplace_back("lin", std::make_shared<nn::Linear>(3, 2));
    auto tanh = std::make_shared<nn::Sequential>();
    tanh->push_back(std::make_shared<nn::Linear>(3, 2));
    tanh->push_back(std::make_shared<nn::Tanh>());
    candidates.emplace_back("tanh", tanh);
    op_ = register_module("op", std::make_shared<DiffMutableOP>(std::move(candidates), "op"));
  }
  LossMap loss(const Batch& batch) override {
    return {{"loss", ((*op_)(batch.inputs) - batch.targets).pow(2).mean()}};
  }
  torch::Tensor predict(const Batch& batch) override { return (*op_)(batch.inputs); }
  torch::Tensor forward_tensor(const torch::Tensor& x) override { return (*op_)(x); }

 private:
  std::shared_ptr<DiffMutableOP> op_;
};

/// The same loss as a function of explicit weights (W0, b0, W1, b1: the module's order).
torch::Tensor tiny_loss(const std::vector<torch::Tensor>& w, const torch::Tensor& alpha,
                        const Batch& batch) {
  const torch::Tensor p = torch::softmax(alpha, 0);
  const torch::Tensor out = p[0] * torch::addmm(w[1], batch.inputs, w[0].t()) +
                            p[1] * torch::tanh(torch::addmm(w[3], batch.inputs, w[2].t()));
  return (out - batch.targets).pow(2).mean();
}

Batch tiny_batch(int64_t n, int64_t seed) {
  torch::manual_seed(seed);
  Batch batch;
  batch.inputs = torch::randn({n, 3}, torch::kDouble);
  batch.targets = torch::randn({n, 2}, torch::kDouble);
  return batch;
}

struct TinyDarts {
  std::shared_ptr<TinyDartsNet> net;
  std::shared_ptr<Darts> darts;
  torch::Tensor alpha;
  std::vector<torch::Tensor> weights;
};

TinyDarts tiny_darts(bool unroll) {
  torch::manual_seed(0);
  TinyDarts t;
  t.net = std::make_shared<TinyDartsNet>();
  DartsOptions options;
  options.unroll = unroll;
  t.darts = std::make_shared<Darts>(t.net, std::make_shared<NasMutator>(), options);
  torch::NoGradGuard no_grad;
  for (auto& p : t.darts->parameters()) p.set_data(p.to(torch::kDouble));
  // Weights large enough that tanh is far from linear.
  for (auto& p : t.net->parameters()) p.normal_(0.0, 0.8);
  t.alpha = t.darts->mutator().arch_params().at(0);
  t.alpha.copy_(torch::tensor({0.4, -0.3}, torch::kDouble));
  t.weights = t.net->parameters();
  return t;
}

std::vector<torch::Tensor> detached(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone().requires_grad_(true));
  return out;
}

/// d/dα L_val(w − ξ(μ·m + ∇w L_train(w, α) + λ·w), α), exactly (double backward).
torch::Tensor exact_unrolled(const std::vector<torch::Tensor>& weights, const torch::Tensor& alpha,
                             const Batch& train, const Batch& val, double lr, double momentum = 0,
                             double weight_decay = 0, const std::vector<torch::Tensor>& buffers = {}) {
  auto w = detached(weights);
  auto a = alpha.detach().clone().requires_grad_(true);
  auto g = torch::autograd::grad({tiny_loss(w, a, train)}, w, {}, true, /*create_graph=*/true);
  std::vector<torch::Tensor> stepped;
  for (size_t i = 0; i < w.size(); ++i) {
    torch::Tensor d = g[i] + weight_decay * w[i];
    if (!buffers.empty()) d = d + momentum * buffers[i];
    stepped.push_back(w[i] - lr * d);
  }
  return torch::autograd::grad({tiny_loss(stepped, a, val)}, {a})[0];
}

/// The same by central differences over α, with plain SGD.
torch::Tensor fd_unrolled(const std::vector<torch::Tensor>& weights, const torch::Tensor& alpha,
                          const Batch& train, const Batch& val, double lr) {
  auto f = [&](const torch::Tensor& a) {
    auto w = detached(weights);
    auto g = torch::autograd::grad({tiny_loss(w, a, train)}, w);
    std::vector<torch::Tensor> stepped;
    for (size_t i = 0; i < w.size(); ++i) stepped.push_back(w[i].detach() - lr * g[i]);
    return tiny_loss(stepped, a, val).item<double>();
  };
  const double h = 1e-5;
  torch::Tensor out = torch::zeros_like(alpha);
  for (int64_t j = 0; j < alpha.numel(); ++j) {
    torch::Tensor plus = alpha.detach().clone(), minus = alpha.detach().clone();
    plus[j] += h;
    minus[j] -= h;
    out[j] = (f(plus) - f(minus)) / (2 * h);
  }
  return out;
}

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

std::shared_ptr<OptimWrapper> sgd(const std::vector<torch::Tensor>& params, double lr,
                                  double momentum = 0, double weight_decay = 0) {
  auto optimizer = std::make_shared<torch::optim::SGD>(
      params, torch::optim::SGDOptions(lr).momentum(momentum).weight_decay(weight_decay));
  return std::make_shared<OptimWrapper>(optimizer, params);
}

}  // namespace

TEST_CASE("Darts: the functional loss of the test is the module's", "[darts]") {
  auto t = tiny_darts(true);
  const Batch batch = tiny_batch(8, 1);
  CHECK(total_loss(t.darts->loss(batch)).item<double>() ==
        Approx(tiny_loss(t.weights, t.alpha, batch).item<double>()).epsilon(1e-12));
}

TEST_CASE("Darts: first-order α gradient is ∇α L_val(w, α)", "[darts]") {
  auto t = tiny_darts(false);
  const Batch val = tiny_batch(8, 2);
  auto a = t.alpha.detach().clone().requires_grad_(true);
  const torch::Tensor expected = torch::autograd::grad({tiny_loss(t.weights, a, val)}, {a})[0];
  const auto grads = t.darts->arch_grads(val);
  REQUIRE(grads.size() == 1);
  CHECK(relative_error(grads[0], expected) < 1e-12);
}

TEST_CASE("Darts: second-order α gradient matches d/dα L_val(w − ξ∇w L_train, α)", "[darts]") {
  auto t = tiny_darts(true);
  const Batch train = tiny_batch(8, 1), val = tiny_batch(8, 2);
  const double lr = 0.3;
  auto optim = sgd(t.weights, lr);
  std::vector<torch::Tensor> before;
  for (const auto& w : t.weights) before.push_back(w.detach().clone());

  const torch::Tensor got = t.darts->unrolled_arch_grads(train, val, *optim)[0];
  const torch::Tensor exact = exact_unrolled(t.weights, t.alpha, train, val, lr);
  const torch::Tensor fd = fd_unrolled(t.weights, t.alpha, train, val, lr);
  INFO("darts " << got << " exact " << exact << " fd " << fd);
  CHECK(relative_error(exact, fd) < 1e-6);  // the two references agree
  CHECK(relative_error(got, exact) < 1e-4);
  CHECK(relative_error(got, fd) < 1e-4);
  // The weights are restored, and no gradient is left behind.
  for (size_t i = 0; i < before.size(); ++i) {
    CHECK(torch::equal(t.weights[i], before[i]));
    CHECK_FALSE(t.weights[i].grad().defined());
  }
  CHECK_FALSE(t.alpha.grad().defined());

  // MMRazor's virtual step is a no-op (w' = w): that gradient is measurably different.
  auto w = detached(t.weights);
  auto a = t.alpha.detach().clone().requires_grad_(true);
  auto g = torch::autograd::grad({tiny_loss(w, a, train)}, w, {}, true, true);
  auto dw_val = torch::autograd::grad({tiny_loss(w, a, val)}, w);
  torch::Tensor dot = torch::zeros({}, torch::kDouble);
  for (size_t i = 0; i < w.size(); ++i) dot = dot + (g[i] * dw_val[i]).sum();
  const torch::Tensor hvp = torch::autograd::grad({dot}, {a})[0];
  const torch::Tensor d_alpha = torch::autograd::grad({tiny_loss(w, a, val)}, {a})[0];
  const torch::Tensor no_virtual_step = d_alpha - lr * hvp;
  INFO("without the virtual step " << no_virtual_step);
  CHECK(relative_error(got, no_virtual_step) > 1e-3);
  CHECK(relative_error(got, no_virtual_step) > 20 * relative_error(got, exact));
}

TEST_CASE("Darts: the virtual step uses SGD's momentum buffer and weight decay", "[darts]") {
  auto t = tiny_darts(true);
  const Batch train = tiny_batch(8, 1), val = tiny_batch(8, 2), first = tiny_batch(8, 3);
  const double lr = 0.2, momentum = 0.9, weight_decay = 0.05;
  auto optim = sgd(t.weights, lr, momentum, weight_decay);
  // One real step fills the momentum buffers: m = ∇w L + λ·w at the old weights.
  auto w0 = detached(t.weights);
  auto g0 = torch::autograd::grad({tiny_loss(w0, t.alpha.detach(), first)}, w0);
  std::vector<torch::Tensor> buffers;
  for (size_t i = 0; i < w0.size(); ++i) buffers.push_back(g0[i] + weight_decay * w0[i].detach());
  optim->update_params(total_loss(t.darts->loss(first)));
  t.alpha.mutable_grad() = torch::Tensor();

  const torch::Tensor got = t.darts->unrolled_arch_grads(train, val, *optim)[0];
  const torch::Tensor exact =
      exact_unrolled(t.weights, t.alpha, train, val, lr, momentum, weight_decay, buffers);
  const torch::Tensor plain = exact_unrolled(t.weights, t.alpha, train, val, lr);
  INFO("darts " << got << " exact " << exact << " without momentum/decay " << plain);
  CHECK(relative_error(got, exact) < 1e-4);
  CHECK(relative_error(got, plain) > 1e-3);
}

TEST_CASE("Darts: a train step steps α on the mutator batch, then w on the supernet batch",
          "[darts]") {
  for (bool unroll : {false, true}) {
    INFO("unroll = " << unroll);
    auto t = tiny_darts(unroll);
    const Batch train = tiny_batch(8, 1), val = tiny_batch(8, 2);
    const double lr_w = 0.1, lr_a = 0.5;
    OptimWrapperDict optim({{"architecture", sgd(t.weights, lr_w)},
                            {"mutator", sgd(t.darts->mutator().arch_params(), lr_a)}});
    CHECK(t.darts->optim_wrapper_names() == std::vector<std::string>{"architecture", "mutator"});

    auto a = t.alpha.detach().clone().requires_grad_(true);
    const torch::Tensor alpha_grad =
        unroll ? exact_unrolled(t.weights, t.alpha, train, val, lr_w)
               : torch::autograd::grad({tiny_loss(t.weights, a, val)}, {a})[0];
    const torch::Tensor alpha_after = t.alpha.detach() - lr_a * alpha_grad;
    // The weight step sees only the supernet batch, at the new α.
    auto w = detached(t.weights);
    auto g = torch::autograd::grad({tiny_loss(w, alpha_after, train)}, w);

    t.darts->set_mutator_batch(val);
    const LossMap out = t.darts->train_step(train, optim);
    CHECK_FALSE(t.darts->has_mutator_batch());
    CHECK(out.front().first == "mutator.loss");
    CHECK(out.back().first == "loss");
    CHECK(relative_error(t.alpha.detach(), alpha_after) < 1e-5);
    for (size_t i = 0; i < w.size(); ++i) {
      CHECK(relative_error(t.weights[i].detach(), w[i].detach() - lr_w * g[i]) < 1e-5);
    }
  }
}

TEST_CASE("Darts: unroll needs an SGD architecture optimiser", "[darts]") {
  auto t = tiny_darts(true);
  auto adam = std::make_shared<OptimWrapper>(
      std::make_shared<torch::optim::Adam>(t.weights, torch::optim::AdamOptions(1e-3)), t.weights);
  CHECK_THROWS_WITH(t.darts->unrolled_arch_grads(tiny_batch(4, 1), tiny_batch(4, 2), *adam),
                    Catch::Contains("SGD"));
}

// The loop end to end on synthetic data: α and w trained on two halves, the genotype written.
TEST_CASE("DartsEpochBasedTrainLoop searches a tiny DARTS supernet and writes its subnet",
          "[darts][e2e]") {
  register_all();
  const fs::path dir = fs::temp_directory_path() / "razor_test_darts_loop";
  fs::remove_all(dir);
  const std::string text = R"(
seed = 1
device = "cpu"
num_threads = 1  # small ops: threads only add synchronisation
custom_hooks = [{ type = "DumpSubnetHook", interval = 1, max_keep_subnets = 1 }]

[model]
type = "Darts"
unroll = true
mutator = { type = "NasMutator" }
[model.architecture]
type = "ImageClassifier"
neck = { type = "GlobalAveragePooling" }
head = { type = "LinearClsHead", num_classes = 4, in_channels = 32 }
[model.architecture.backbone]
type = "DartsBackbone"
in_channels = 1
base_channels = 4
num_layers = 3
num_nodes = 2
stem_multiplier = 2
norm_cfg = { type = "BN", affine = false }
route_cfg = { type = "DiffChoiceRoute", with_arch_param = true }
[model.architecture.backbone.mutable_cfg]
type = "DiffMutableOP"
[model.architecture.backbone.mutable_cfg.candidates]
zero = { type = "DartsZero" }
skip_connect = { type = "DartsSkipConnect", use_drop_path = true }
max_pool_3x3 = { type = "DartsPoolBN", pool_type = "max" }
sep_conv_3x3 = { type = "DartsSepConv", kernel_size = 3 }
dil_conv_3x3 = { type = "DartsDilConv", kernel_size = 3 }

[train_dataloader]
batch_size = 8
num_workers = 0
[train_dataloader.dataset]
type = "Synthetic"
num_samples = 64
num_classes = 4
shape = [1, 8, 8]
indices = -32
[val_dataloader]
batch_size = 16
num_workers = 0
shuffle = false
[val_dataloader.dataset]
type = "Synthetic"
num_samples = 16
num_classes = 4
shape = [1, 8, 8]
seed = 5

[optim_wrapper]
constructor = "SeparateOptimWrapperConstructor"
architecture = { optimizer = { type = "SGD", lr = 0.05, momentum = 0.9, weight_decay = 3e-4 }, clip_grad = { max_norm = 5 } }
mutator = { optimizer = { type = "Adam", lr = 3e-3, weight_decay = 1e-3 } }

[train_cfg]
type = "DartsEpochBasedTrainLoop"
max_epochs = 2
[train_cfg.mutator_dataloader]
batch_size = 8
num_workers = 0
dataset = { type = "Synthetic", num_samples = 64, num_classes = 4, shape = [1, 8, 8], indices = 16 }
)";
  auto config = std::make_shared<Config>(parse_config_text(text, "darts_toy.toml"));
  RunnerOptions options;
  options.work_dir = dir.string();
  Runner runner(config, options);
  auto& darts = dynamic_cast<Darts&>(runner.model());
  const torch::Tensor alpha_before = darts.mutator().arch_params().at(0).detach().clone();
  runner.train();
  CHECK(runner.train_loop().max_iters() == 2 * 2);  // the shorter loader: 16 / 8 batches
  CHECK(runner.iter() == 4);
  CHECK_FALSE(torch::equal(darts.mutator().arch_params().at(0), alpha_before));
  CHECK(runner.message_hub().scalars.count("accuracy/top1") == 1);

  REQUIRE(fs::exists(dir / "best_fix_subnet.yaml"));
  CHECK(fs::exists(dir / "subnet_epoch_2.yaml"));
  CHECK_FALSE(fs::exists(dir / "subnet_epoch_1.yaml"));  // max_keep_subnets = 1
  const Json subnet = read_subnet_file((dir / "best_fix_subnet.yaml").string());
  // 2 normal + 2 reduce routes, 5 + 5 edges: one entry per alias.
  CHECK(subnet.size() == 14);
  REQUIRE(subnet.contains("normal_n3"));
  CHECK(subnet["normal_n3"]["chosen"].size() == 2);
  REQUIRE(subnet.contains("reduce_n2_p1"));
  CHECK(subnet["reduce_n2_p1"]["chosen"].is_string());

  // The subnet fixes a fresh supernet, which then runs only the chosen ops and edges.
  Runner fresh(config, options);
  auto& supernet = dynamic_cast<Darts&>(fresh.model()).architecture();
  load_fix_subnet(supernet, subnet, "best_fix_subnet.yaml");
  supernet.eval();
  torch::NoGradGuard no_grad;
  CHECK(supernet.forward_tensor(torch::randn({2, 1, 8, 8})).sizes() == torch::IntArrayRef({2, 4}));

  // razor export --subnet, the same export as a pruned model's: a sub_model in mode
  // "mutable" whose edges stay, fixed, in their cells (no block list holds them), with the
  // searched weights; it computes what the fixed supernet computes.
  const std::string supernet_file = (dir / "epoch_2.pth").string();  // the searched weights
  StaticExportOptions export_options;
  export_options.subnet = (dir / "best_fix_subnet.yaml").string();
  const StaticExport exported = export_static(config, supernet_file, (dir / "static").string(), export_options);
  CHECK(exported.max_relative_error < 1e-5);
  CHECK(exported.static_params < exported.full_params);
  auto static_config = std::make_shared<Config>(load_config(exported.config));
  CHECK(static_config->tree["model"]["type"] == "sub_model");
  CHECK(static_config->tree["model"]["mode"] == "mutable");
  CHECK_FALSE(static_config->tree.contains("train_cfg"));  // DARTS's bi-level loop needs the algorithm
  Args args(static_config->tree.at("model"), "model", static_config);
  auto plain = build_model_as<Model>(args, {}, "the static subnet");
  CheckpointReader reader(exported.weights);
  load_state_dict(*plain, reader.contents().model, /*strict=*/true, exported.weights);
  plain->eval();
  load_state_dict(supernet, state_dict(darts.architecture()), /*strict=*/false, "the searched supernet");
  const torch::Tensor x = torch::randn({3, 1, 8, 8});
  CHECK(torch::allclose(plain->forward_tensor(x), supernet.forward_tensor(x), 1e-5, 1e-6));
}
