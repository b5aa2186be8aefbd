#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "apps/register_all.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/param_scheduler.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

/// Two linear classifiers on the flattened image, each stepped by its own optimiser.
class TwoHeads : public Model {
 public:
  TwoHeads() {
    a = register_module("a", torch::nn::Linear(16, 4));
    b = register_module("b", torch::nn::Linear(16, 4));
  }
  LossMap loss(const Batch& batch) override {
    return {{"loss", torch::cross_entropy_loss(forward_tensor(batch.inputs), batch.targets)}};
  }
  torch::Tensor predict(const Batch& batch) override { return torch::softmax(forward_tensor(batch.inputs), 1); }
  torch::Tensor forward_tensor(const torch::Tensor& inputs) override { return a(inputs.reshape({inputs.size(0), -1})); }
  std::vector<std::string> optim_wrapper_names() const override { return {"a", "b"}; }
  LossMap train_step(const Batch& batch, OptimWrapper& optim) override {
    OptimWrapperDict& dict = as_optim_wrapper_dict(optim, "TwoHeads");
    auto x = batch.inputs.reshape({batch.size(), -1});
    auto loss_a = torch::cross_entropy_loss(a(x), batch.targets);
    auto loss_b = torch::cross_entropy_loss(b(x), batch.targets);
    dict.at("a").update_params(loss_a);
    dict.at("b").update_params(loss_b);
    return {{"a.loss", loss_a.detach()}, {"b.loss", loss_b.detach()}};
  }
  torch::nn::Linear a{nullptr}, b{nullptr};
};

void register_two_heads() {
  register_all();
  if (!model_registry().contains("TwoHeads")) {
    model_registry().add("TwoHeads", [](Args&, const BuildContext&) {
      return std::static_pointer_cast<torch::nn::Module>(std::make_shared<TwoHeads>());
    });
  }
}

Json two_optimisers() {
  return {{"constructor", "SeparateOptimWrapperConstructor"},
          {"a", {{"optimizer", {{"type", "SGD"}, {"lr", 0.1}, {"momentum", 0.9}}}}},
          {"b", {{"optimizer", {{"type", "Adam"}, {"lr", 0.01}}}}}};
}

std::shared_ptr<OptimWrapperDict> build_dict(const Json& table, torch::nn::Module& model) {
  register_optimizers();
  Args args = Args::of(table, "optim_wrapper");
  auto wrapper = std::dynamic_pointer_cast<OptimWrapperDict>(build_optim_wrapper(args, model));
  REQUIRE(wrapper);
  return wrapper;
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

bool all_equal(const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& y) {
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!torch::equal(x[i], y[i])) return false;
  }
  return true;
}

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("razor_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string toy_config(int max_epochs) {
  return R"(
seed = 5
device = "cpu"
num_threads = 2

[model]
type = "TwoHeads"

[train_dataloader]
batch_size = 16
shuffle = true
[train_dataloader.dataset]
type = "Synthetic"
num_samples = 64
num_classes = 4
shape = [1, 4, 4]
seed = 1

[optim_wrapper]
constructor = "SeparateOptimWrapperConstructor"
a = { optimizer = { type = "SGD", lr = 0.1, momentum = 0.9 } }
b = { optimizer = { type = "Adam", lr = 0.01 } }

[[param_scheduler]]
type = "CosineAnnealingLR"
by_epoch = true
convert_to_iter_based = true

[train_cfg]
type = "EpochBasedTrainLoop"
max_epochs = )" + std::to_string(max_epochs) + R"(

[default_hooks.logger]
type = "LoggerHook"
interval = 1
)";
}

std::shared_ptr<Config> toy(int max_epochs) {
  register_two_heads();
  return std::make_shared<Config>(parse_config_text(toy_config(max_epochs), "toy.toml"));
}

class StopAfterEpoch : public Hook {
 public:
  explicit StopAfterEpoch(int64_t epoch) : epoch_(epoch) { set_priority(kLowest); }
  std::string name() const override { return "StopAfterEpoch"; }
  void after_train_epoch(Runner& runner) override {
    if (runner.epoch() == epoch_) throw std::runtime_error("stopped");
  }

 private:
  int64_t epoch_;
};

}  // namespace

TEST_CASE("OptimWrapperDict: one optimiser per child, each over that child only", "[optim]") {
  torch::manual_seed(0);
  TwoHeads model;
  auto dict = build_dict(two_optimisers(), model);
  CHECK(dict->names() == std::vector<std::string>{"a", "b"});
  CHECK(dict->at("a").parameters().size() == 2);
  CHECK(dict->at("b").parameters().size() == 2);
  CHECK(dict->parameters().size() == 4);

  // Stepping "a" with a loss over both children moves a only, by plain SGD (first step: no
  // momentum history yet).
  auto a0 = copies(model.a->parameters());
  auto b0 = copies(model.b->parameters());
  auto x = torch::randn({3, 16});
  auto loss = model.a(x).sum() + model.b(x).sum();
  dict->at("a").update_params(loss);
  CHECK(all_equal(copies(model.b->parameters()), b0));
  CHECK(torch::allclose(model.a->bias, a0[1] - 0.1 * 3.0, 1e-6, 1e-6));  // d(sum)/d(bias) = N = 3
  CHECK(torch::allclose(model.a->weight, a0[0] - 0.1 * x.sum(0).expand({4, 16}), 1e-5, 1e-6));

  // Schedulers see the groups of both: a's then b's.
  CHECK(dict->get("lr") == std::vector<double>{0.1, 0.01});
  register_schedulers();
  Json scheduler = {{"type", "MultiStepLR"}, {"milestones", {1}}, {"gamma", 0.5}};
  Args scheduler_args = Args::of(scheduler, "param_scheduler");
  auto step = scheduler_registry().build(scheduler_args);
  step->resolve(1, 2, 2);
  ParamSchedulerSet set({step}, *dict);
  set.apply(1, 1);
  CHECK(dict->at("a").get("lr").front() == Approx(0.05));
  CHECK(dict->at("b").get("lr").front() == Approx(0.005));

  // One optimiser's operations on the whole dict are errors that say why.
  CHECK_THROWS_WITH(dict->update_params(loss), Catch::Contains("several optimisers (a, b)"));
  CHECK_THROWS_WITH(dict->at("c"), Catch::Contains("no optimiser \"c\""));
}

TEST_CASE("OptimWrapperDict: saved states of both optimisers load into a fresh dict", "[optim]") {
  torch::manual_seed(0);
  auto x = torch::randn({5, 16});
  auto step_both = [&](TwoHeads& model, OptimWrapperDict& dict) {
    dict.at("a").update_params(model.a(x).pow(2).mean());
    dict.at("b").update_params(model.b(x).pow(2).mean());
  };
  TwoHeads model;
  auto dict = build_dict(two_optimisers(), model);
  step_both(model, *dict);
  step_both(model, *dict);
  std::stringstream stream;
  {
    torch::serialize::OutputArchive archive;
    dict->optimizer().save(archive);
    archive.save_to(stream);
  }
  // Two copies of the model's weights: one with the loaded optimiser states, one without.
  auto restored_model = std::make_shared<TwoHeads>();
  auto fresh_model = std::make_shared<TwoHeads>();
  {
    torch::NoGradGuard no_grad;
    for (auto* target : {restored_model.get(), fresh_model.get()}) {
      auto params = target->parameters();
      auto source = model.parameters();
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(source[i]);
    }
  }
  auto restored = build_dict(two_optimisers(), *restored_model);
  auto fresh = build_dict(two_optimisers(), *fresh_model);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    restored->optimizer().load(archive);
  }
  step_both(model, *dict);
  step_both(*restored_model, *restored);
  step_both(*fresh_model, *fresh);
  // Momentum (SGD) and moments (Adam) make the next step depend on the state.
  CHECK(all_equal(copies(restored_model->a->parameters()), copies(model.a->parameters())));
  CHECK(all_equal(copies(restored_model->b->parameters()), copies(model.b->parameters())));
  CHECK_FALSE(all_equal(copies(fresh_model->a->parameters()), copies(model.a->parameters())));
  CHECK_FALSE(all_equal(copies(fresh_model->b->parameters()), copies(model.b->parameters())));

  // A state saved without one of the optimisers names it.
  Json only_a = two_optimisers();
  only_a.erase("b");
  TwoHeads other;
  auto single = build_dict(only_a, other);
  std::stringstream partial;
  {
    torch::serialize::OutputArchive archive;
    single->optimizer().save(archive);
    archive.save_to(partial);
  }
  torch::serialize::InputArchive archive;
  archive.load_from(partial);
  CHECK_THROWS_WITH(restored->optimizer().load(archive), Catch::Contains("no optimiser \"b\""));
}

TEST_CASE("Optimiser dict config errors name the key at fault", "[optim]") {
  TwoHeads model;
  register_optimizers();
  auto build_error = [&](const Json& table) -> std::string {
    Args args = Args::of(table, "optim_wrapper");
    try {
      build_optim_wrapper(args, model);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  Json unknown_child = two_optimisers();
  unknown_child["c"] = {{"optimizer", {{"type", "SGD"}, {"lr", 0.1}}}};
  CHECK_THAT(build_error(unknown_child), Catch::Contains("optim_wrapper.c:") && Catch::Contains("children: a, b"));

  Json leftover = two_optimisers();
  leftover["optimizer"] = {{"type", "SGD"}, {"lr", 0.1}};
  CHECK_THAT(build_error(leftover), Catch::Contains("optim_wrapper.optimizer:") && Catch::Contains("_delete_"));

  Json typo = two_optimisers();
  typo["constructor"] = "SeparateOptimWrapperConstrutor";
  CHECK_THAT(build_error(typo), Catch::Contains("optim_wrapper.constructor") &&
                                    Catch::Contains("did you mean \"SeparateOptimWrapperConstructor\""));

  Json empty = {{"constructor", "SeparateOptimWrapperConstructor"}};
  CHECK_THAT(build_error(empty), Catch::Contains("optim_wrapper.constructor") && Catch::Contains("one optim_wrapper table"));

  Json bad_child = two_optimisers();
  bad_child["b"]["optimizer"]["type"] = "Adan";
  CHECK_THAT(build_error(bad_child), Catch::Contains("optim_wrapper.b.optimizer.type"));

  // Against what the model steps.
  auto check_error = [](const Json& table, const std::vector<std::string>& names) -> std::string {
    Args args = Args::of(table, "optim_wrapper");
    try {
      check_optim_wrapper_names(args, names, "Toy");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(check_error(two_optimisers(), {"a", "b"}).empty());
  CHECK_THAT(check_error(two_optimisers(), {}),
             Catch::Contains("optim_wrapper.constructor") && Catch::Contains("trains with a single optimiser"));
  Json plain = {{"optimizer", {{"type", "SGD"}, {"lr", 0.1}}}};
  CHECK(check_error(plain, {}).empty());
  CHECK_THAT(check_error(plain, {"a", "b"}), Catch::Contains("optim_wrapper.constructor") &&
                                                 Catch::Contains("SeparateOptimWrapperConstructor"));
  Json missing = two_optimisers();
  missing.erase("b");
  CHECK_THAT(check_error(missing, {"a", "b"}), Catch::Contains("optim_wrapper.b:") && Catch::Contains("missing"));
  Json extra = two_optimisers();
  extra["bb"] = extra["b"];
  CHECK_THAT(check_error(extra, {"a", "b"}), Catch::Contains("optim_wrapper.bb:") && Catch::Contains("did you mean \"b\""));
}

TEST_CASE("A plain model given an optimiser dict is a config error from the runner", "[optim][runner]") {
  register_all();
  const std::string text = R"(
device = "cpu"
[model]
type = "ImageClassifier"
backbone = { type = "ResNet_CIFAR", depth = 8, in_channels = 1, base_channels = 4 }
neck = { type = "GlobalAveragePooling" }
head = { type = "LinearClsHead", num_classes = 4, in_channels = 16 }
[optim_wrapper]
constructor = "SeparateOptimWrapperConstructor"
backbone = { optimizer = { type = "SGD", lr = 0.1 } }
)";
  RunnerOptions options;
  options.write_files = false;
  Runner runner(std::make_shared<Config>(parse_config_text(text, "plain.toml")), options);
  CHECK_THROWS_WITH(runner.optim_wrapper(), Catch::Contains("optim_wrapper.constructor") &&
                                                Catch::Contains("\"ImageClassifier\" trains with a single optimiser"));
}

TEST_CASE("Two optimisers: a run resumed after epoch 1 ends where the uninterrupted run ends", "[optim][runner]") {
  auto whole_dir = temp_dir("optim_dict_whole");
  auto split_dir = temp_dir("optim_dict_split");
  std::vector<torch::Tensor> whole_params, split_params;
  {
    RunnerOptions options;
    options.work_dir = whole_dir.string();
    Runner runner(toy(2), options);
    runner.train();
    whole_params = copies(runner.model().parameters());
  }
  {
    RunnerOptions options;
    options.work_dir = split_dir.string();
    Runner runner(toy(2), options);
    runner.register_hook(std::make_shared<StopAfterEpoch>(1));
    CHECK_THROWS_WITH(runner.train(), "stopped");
  }
  REQUIRE(fs::exists(split_dir / "epoch_1.pth"));
  {
    RunnerOptions options;
    options.work_dir = split_dir.string();
    options.resume = "auto";
    Runner runner(toy(2), options);
    runner.train();
    CHECK(runner.epoch() == 2);
    split_params = copies(runner.model().parameters());
  }
  REQUIRE(whole_params.size() == 4);
  for (size_t i = 0; i < whole_params.size(); ++i) {
    CHECK(torch::allclose(split_params[i], whole_params[i], 1e-6, 1e-7));
  }

  // Each optimiser's lr is logged, and the cosine schedule applies to both.
  std::ifstream in(whole_dir / "scalars.jsonl");
  std::string line;
  int records = 0;
  while (std::getline(in, line)) {
    auto record = Json::parse(line);
    if (record["mode"] != "train") continue;
    REQUIRE(record.contains("a.lr"));
    REQUIRE(record.contains("b.lr"));
    const double factor = record["a.lr"].get<double>() / 0.1;
    CHECK(record["b.lr"].get<double>() == Approx(0.01 * factor).epsilon(1e-9));
    CHECK(record["lr"].get<double>() == Approx(record["a.lr"].get<double>()));
    if (record["iter"] == 8) CHECK(factor < 0.05);  // near the end of the cosine
    ++records;
  }
  CHECK(records == 8);  // 64 samples / 16 per batch x 2 epochs
}
