#include <catch2/catch.hpp>
#include <map>

#include <torch/torch.h>

#include "engine/optim_wrapper.h"

using namespace razor;

namespace {

struct Net : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
  Net() {
    fc = register_module("fc", torch::nn::Linear(3, 2));
    bn = register_module("bn", torch::nn::BatchNorm1d(2));
  }
};

}  // namespace

TEST_CASE("SGD step through the wrapper equals the closed-form update", "[optim]") {
  torch::manual_seed(0);
  auto net = std::make_shared<Net>();
  Json table = {{"optimizer", {{"type", "SGD"}, {"lr", 0.5}, {"weight_decay", 0.1}}}};
  Args args = Args::of(table, "optim_wrapper");
  auto optim = build_optim_wrapper(args, *net);
  auto w0 = net->fc->weight.detach().clone();
  auto loss = net->fc->weight.sum();  // gradient of ones
  optim->update_params(loss);
  auto expected = w0 - 0.5 * (torch::ones_like(w0) + 0.1 * w0);
  CHECK(torch::allclose(net->fc->weight, expected, 1e-6, 1e-7));
}

TEST_CASE("paramwise_cfg puts norms and biases in groups without weight decay", "[optim]") {
  auto net = std::make_shared<Net>();
  Json table = {{"optimizer", {{"type", "SGD"}, {"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 5e-4}}},
                {"paramwise_cfg", {{"norm_decay_mult", 0.0}, {"bias_decay_mult", 0.0}}}};
  Args args = Args::of(table, "optim_wrapper");
  auto optim = build_optim_wrapper(args, *net);
  auto decays = optim->get("weight_decay");
  REQUIRE(decays.size() == 2);
  size_t zero_params = 0, decayed_params = 0;
  for (auto& group : optim->optimizer().param_groups()) {
    auto& options = static_cast<torch::optim::SGDOptions&>(group.options());
    (options.weight_decay() == 0.0 ? zero_params : decayed_params) += group.params().size();
  }
  CHECK(zero_params == 3);     // fc.bias, bn.weight, bn.bias
  CHECK(decayed_params == 1);  // fc.weight
}

TEST_CASE("dwconv_decay_mult applies to depthwise convolution weights, as MMEngine's", "[optim]") {
  struct Convs : torch::nn::Module {
    torch::nn::Conv2d depthwise{torch::nn::Conv2dOptions(4, 4, 3).groups(4)};
    torch::nn::Conv2d dense{torch::nn::Conv2dOptions(4, 8, 1)};
    Convs() {
      register_module("depthwise", depthwise);
      register_module("dense", dense);
    }
  };
  auto net = std::make_shared<Convs>();
  Json table = {{"optimizer", {{"type", "SGD"}, {"lr", 0.1}, {"weight_decay", 4e-5}}},
                {"paramwise_cfg", {{"dwconv_decay_mult", 0.0}, {"bias_decay_mult", 0.5}}}};
  Args args = Args::of(table, "optim_wrapper");
  auto optim = build_optim_wrapper(args, *net);
  std::map<double, std::vector<int64_t>> numels;  // decay -> sizes of its parameters
  for (auto& group : optim->optimizer().param_groups()) {
    auto& options = static_cast<torch::optim::SGDOptions&>(group.options());
    for (auto& p : group.params()) numels[options.weight_decay()].push_back(p.numel());
  }
  CHECK(numels[0.0] == std::vector<int64_t>{36});        // depthwise.weight
  CHECK(numels[2e-5] == std::vector<int64_t>{4, 8});     // both biases: bias_decay_mult first
  CHECK(numels[4e-5] == std::vector<int64_t>{32});       // dense.weight
}

TEST_CASE("Gradient accumulation steps every N calls with the loss scaled by 1/N", "[optim]") {
  torch::manual_seed(0);
  auto net = std::make_shared<Net>();
  Json table = {{"optimizer", {{"type", "SGD"}, {"lr", 1.0}}}, {"accumulative_counts", 2}};
  Args args = Args::of(table, "optim_wrapper");
  auto optim = build_optim_wrapper(args, *net);
  optim->initialize_count_status(0, 4);
  auto w0 = net->fc->weight.detach().clone();
  optim->update_params(net->fc->weight.sum());
  CHECK(torch::equal(net->fc->weight, w0));  // no step yet
  optim->update_params(net->fc->weight.sum() * 3);
  // Mean of the two gradients (1 and 3) = 2.
  CHECK(torch::allclose(net->fc->weight, w0 - 2.0, 1e-6, 1e-6));
}

TEST_CASE("Gradient clipping by norm bounds the step", "[optim]") {
  auto net = std::make_shared<Net>();
  Json table = {{"optimizer", {{"type", "SGD"}, {"lr", 1.0}}}, {"clip_grad", {{"max_norm", 1.0}}}};
  Args args = Args::of(table, "optim_wrapper");
  auto optim = build_optim_wrapper(args, *net);
  auto w0 = net->fc->weight.detach().clone();
  optim->update_params(net->fc->weight.sum() * 100);
  CHECK(optim->last_grad_norm() == Approx(100 * std::sqrt(6.0)));
  CHECK((net->fc->weight - w0).norm().item<double>() == Approx(1.0).epsilon(1e-4));
}

TEST_CASE("Adam and AdamW build, unknown optimizer suggests the nearest", "[optim]") {
  auto net = std::make_shared<Net>();
  for (const char* type : {"Adam", "AdamW"}) {
    Json table = {{"optimizer", {{"type", type}, {"lr", 1e-3}, {"betas", {0.8, 0.99}}}}};
    Args args = Args::of(table, "optim_wrapper");
    auto optim = build_optim_wrapper(args, *net);
    CHECK(optim->get("momentum").front() == Approx(0.8));
  }
  Json bad = {{"optimizer", {{"type", "AdamX"}, {"lr", 1e-3}}}};
  Args args = Args::of(bad, "optim_wrapper");
  CHECK_THROWS_WITH(build_optim_wrapper(args, *net), Catch::Contains("optim_wrapper.optimizer.type") &&
                                                         Catch::Contains("did you mean"));
}
