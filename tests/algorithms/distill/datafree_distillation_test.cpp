#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <torch/torch.h>

#include "algorithms/distill/datafree_distillation.h"
#include "apps/register_all.h"
#include "components/architectures/image_classifier.h"
#include "engine/error.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/runner.h"

using namespace razor;
namespace fs = std::filesystem;

namespace {

Json classifier(int64_t depth, int64_t width) {
  return {{"type", "ImageClassifier"},
          {"backbone", {{"type", "ResNet_CIFAR"}, {"depth", depth}, {"in_channels", 1}, {"base_channels", width}}},
          {"neck", {{"type", "GlobalAveragePooling"}}},
          {"head", {{"type", "LinearClsHead"}, {"num_classes", 5}, {"in_channels", width * 4}}}};
}

Json outputs(const std::string& source) { return {{"type", "ModuleOutputs"}, {"source", source}}; }
Json from(bool student, const std::string& recorder) { return {{"from_student", student}, {"recorder", recorder}}; }

/// MMRazor's DAFL recipe (dafl_logits_resnet34_resnet18_8xb256_cifar10.py) on small models.
Json dafl_config() {
  return {{"type", "DAFLDataFreeDistillation"},
          {"architecture", classifier(8, 4)},
          {"teachers", {{"res", {{"build_cfg", classifier(14, 8)}}}}},
          {"generator",
           {{"type", "DAFLGenerator"}, {"img_size", 12}, {"latent_dim", 8}, {"hidden_channels", 8}, {"out_channels", 1}}},
          {"distiller",
           {{"student_recorders", {{"fc", outputs("head.fc")}}},
            {"teacher_recorders", {{"fc", outputs("res.head.fc")}}},
            {"distill_losses", {{"loss_kl", {{"type", "KLDivergence"}, {"tau", 6.0}}}}},
            {"loss_forward_mappings", {{"loss_kl", {{"preds_S", from(true, "fc")}, {"preds_T", from(false, "fc")}}}}}}},
          {"generator_distiller",
           {{"teacher_recorders", {{"gap", outputs("res.neck.gap")}, {"fc", outputs("res.head.fc")}}},
            {"distill_losses",
             {{"loss_oh", {{"type", "OnehotLikeLoss"}, {"loss_weight", 0.05}}},
              {"loss_ie", {{"type", "InformationEntropyLoss"}, {"loss_weight", 5.0}}},
              {"loss_ac", {{"type", "ActivationLoss"}, {"loss_weight", 0.01}}}}},
            {"loss_forward_mappings",
             {{"loss_oh", {{"preds_T", from(false, "fc")}}},
              {"loss_ie", {{"preds_T", from(false, "fc")}}},
              {"loss_ac", {{"feat_T", from(false, "gap")}}}}}}}};
}

/// MMRazor's DFAD recipe (dfad_logits_resnet34_resnet18_8xb32_cifar10.py) on small models.
Json dfad_config() {
  Json table = dafl_config();
  table["type"] = "DataFreeDistillation";
  table["distiller"]["distill_losses"] = {{"loss_l1", {{"type", "L1Loss"}}}};
  table["distiller"]["loss_forward_mappings"] = {
      {"loss_l1", {{"s_feature", from(true, "fc")}, {"t_feature", from(false, "fc")}}}};
  table["generator_distiller"] = {
      {"student_recorders", {{"fc", outputs("head.fc")}}},
      {"teacher_recorders", {{"fc", outputs("res.head.fc")}}},
      {"distill_losses", {{"loss_l1", {{"type", "L1Loss"}, {"loss_weight", -1.0}}}}},
      {"loss_forward_mappings", {{"loss_l1", {{"s_feature", from(true, "fc")}, {"t_feature", from(false, "fc")}}}}}};
  table["student_iter"] = 3;
  table["student_train_first"] = true;
  return table;
}

std::shared_ptr<DataFreeDistillation> build(const Json& table) {
  register_all();
  Args args = Args::of(table, "model");
  return build_model_as<DataFreeDistillation>(args, {}, "a data-free distillation model");
}

std::string build_error(const Json& table) {
  try {
    build(table);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

/// Plain SGD (no momentum, no decay) for the student and the generator.
std::shared_ptr<OptimWrapperDict> sgd(DataFreeDistillation& algorithm, double student_lr, double generator_lr) {
  Json table = {{"constructor", "SeparateOptimWrapperConstructor"},
                {"architecture", {{"optimizer", {{"type", "SGD"}, {"lr", student_lr}}}}},
                {"generator", {{"optimizer", {{"type", "SGD"}, {"lr", generator_lr}}}}}};
  Args args = Args::of(table, "optim_wrapper");
  check_optim_wrapper_names(args, algorithm.optim_wrapper_names(), "test");
  return std::dynamic_pointer_cast<OptimWrapperDict>(build_optim_wrapper(args, algorithm));
}

std::vector<torch::Tensor> trainable(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (auto& p : module.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

bool unchanged(const std::vector<torch::Tensor>& now, const std::vector<torch::Tensor>& before) {
  for (size_t i = 0; i < now.size(); ++i) {
    if (!torch::equal(now[i], before[i])) return false;
  }
  return true;
}

double value(const LossMap& losses, const std::string& key) {
  for (const auto& item : losses) {
    if (item.first == key) return item.second.item<double>();
  }
  FAIL("no " << key << " in the losses");
  return 0;
}

ImageClassifier& teacher_of(DataFreeDistillation& algorithm) {
  return dynamic_cast<ImageClassifier&>(*algorithm.teachers().front().second);
}

/// DAFL's generator losses in plain LibTorch: 0.05 CE(T, argmax T) + 5 sum(p log10 p) - 0.01 mean|f|.
torch::Tensor plain_dafl_loss(ImageClassifier& teacher, const torch::Tensor& images) {
  auto logits = teacher.forward_tensor(images);
  auto feat = teacher.extract_feat(images);
  auto onehot = 0.05 * torch::nll_loss(torch::log_softmax(logits, 1), logits.detach().argmax(1));
  auto p = torch::softmax(logits, 1).mean(0);
  auto entropy = 5.0 * (p * torch::log10(p)).sum();
  auto activation = -0.01 * feat.abs().mean();
  return onehot + entropy + activation;
}

}  // namespace

TEST_CASE("DAFLGenerator: MMRazor's layers in order, standardised output, sampled codes", "[datafree][generator]") {
  register_all();
  torch::manual_seed(0);
  Json table = {{"type", "DAFLGenerator"}, {"img_size", 12}, {"latent_dim", 6}, {"hidden_channels", 8}, {"out_channels", 2}};
  Args args = Args::of(table, "model.generator");
  auto generator = build_model_as<DAFLGenerator>(args, {}, "a generator");
  generator->train();
  CHECK(generator->init_size() == 3);

  std::map<std::string, torch::Tensor> p;
  for (const auto& item : generator->named_parameters()) p[item.key()] = item.value();
  CHECK(trainable(*generator).size() == 14);  // 16 tensors; the last BatchNorm has no affine parameters to train
  CHECK_FALSE(p.at("conv_blocks2.5.weight").requires_grad());
  // PyTorch's default init for the convs: |w| <= 1/sqrt(fan_in).
  CHECK(p.at("conv_blocks1.0.weight").abs().max().item<double>() <= 1.0 / std::sqrt(8.0 * 9.0));
  CHECK(p.at("conv_blocks1.0.bias").abs().max().item<double>() > 0);

  auto z = torch::randn({4, 6});
  auto out = (*generator)(z);
  REQUIRE(out.sizes() == torch::IntArrayRef({4, 2, 12, 12}));
  // The same layers in plain LibTorch (training-mode batch norms).
  auto bn = [](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
    return torch::batch_norm(x, w, b, {}, {}, /*training=*/true, 0.1, eps, false);
  };
  auto up = [](const torch::Tensor& x) { return torch::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}); };
  auto x = torch::linear(z, p.at("linear.weight"), p.at("linear.bias")).view({4, 8, 3, 3});
  x = up(bn(x, p.at("bn1.weight"), p.at("bn1.bias"), 1e-5));
  x = torch::conv2d(x, p.at("conv_blocks1.0.weight"), p.at("conv_blocks1.0.bias"), 1, 1);
  x = up(torch::leaky_relu(bn(x, p.at("conv_blocks1.1.weight"), p.at("conv_blocks1.1.bias"), 0.8), 0.2));
  x = torch::conv2d(x, p.at("conv_blocks2.0.weight"), p.at("conv_blocks2.0.bias"), 1, 1);
  x = torch::leaky_relu(bn(x, p.at("conv_blocks2.1.weight"), p.at("conv_blocks2.1.bias"), 0.8), 0.2);
  x = torch::tanh(torch::conv2d(x, p.at("conv_blocks2.3.weight"), p.at("conv_blocks2.3.bias"), 1, 1));
  x = bn(x, {}, {}, 1e-5);
  CHECK(torch::allclose(out, x, 1e-5, 1e-6));
  // Each output channel is standardised over the batch, like normalised images.
  auto mean = out.mean({0, 2, 3});
  auto var = out.var({0, 2, 3}, /*unbiased=*/false);
  CHECK(mean.abs().max().item<double>() < 1e-5);
  CHECK(var.sub(1).abs().max().item<double>() < 1e-2);  // eps 1e-5 over a small variance

  CHECK(generator->sample(3).sizes() == torch::IntArrayRef({3, 2, 12, 12}));
  CHECK_THROWS_WITH((*generator)(torch::randn({4, 5})), Catch::Contains("latent_dim (6)"));
}

TEST_CASE("DAFL: the generator's losses equal a plain LibTorch computation, values and gradient", "[datafree]") {
  torch::manual_seed(0);
  auto algorithm = build(dafl_config());
  algorithm->train();
  CHECK_FALSE(teacher_of(*algorithm).is_training());
  auto images = torch::randn({6, 1, 12, 12}).requires_grad_();
  LossMap losses = algorithm->generator_losses(images);
  REQUIRE(losses.size() == 3);
  CHECK(losses[0].first == "loss_oh");
  CHECK(losses[2].first == "loss_ac");

  ImageClassifier& teacher = teacher_of(*algorithm);
  auto logits = teacher.forward_tensor(images);
  auto p = torch::softmax(logits, 1).mean(0);
  CHECK(losses[0].second.item<double>() ==
        Approx(0.05 * torch::cross_entropy_loss(logits, logits.argmax(1)).item<double>()).epsilon(1e-5));
  CHECK(losses[1].second.item<double>() == Approx(5.0 * (p * torch::log10(p)).sum().item<double>()).epsilon(1e-5));
  CHECK(losses[2].second.item<double>() ==
        Approx(-0.01 * teacher.extract_feat(images).abs().mean().item<double>()).epsilon(1e-5));

  auto grad = torch::autograd::grad({total_loss(losses)}, {images})[0];
  auto plain_grad = torch::autograd::grad({plain_dafl_loss(teacher, images)}, {images})[0];
  CHECK(grad.abs().sum().item<double>() > 0);
  CHECK(torch::allclose(grad, plain_grad, 1e-4, 1e-7));
}

TEST_CASE("DAFL train step: the generator and the student each take exactly their own SGD step", "[datafree]") {
  torch::manual_seed(0);
  auto algorithm = build(dafl_config());
  torch::manual_seed(0);
  auto reference = build(dafl_config());  // the same weights, for the plain computation
  algorithm->train();
  reference->train();
  const double student_lr = 0.1, generator_lr = 0.05;
  auto optim = sgd(*algorithm, student_lr, generator_lr);
  auto teacher_before = copies(teacher_of(*algorithm).parameters());
  Batch batch{torch::randn({8, 1, 12, 12}), torch::zeros({8}, torch::kLong), {}};  // only its size counts

  torch::manual_seed(7);
  LossMap logged = algorithm->train_step(batch, *optim);

  // By hand: one generated batch; the generator descends the DAFL losses through the frozen
  // teacher; the student descends tau^2 KL(T || S) (tau 6) on the detached batch.
  torch::manual_seed(7);
  auto images = reference->generator().sample(8);
  auto generator_loss = plain_dafl_loss(teacher_of(*reference), images);
  auto generator_params = trainable(reference->generator());
  auto generator_grads = torch::autograd::grad({generator_loss}, generator_params);
  auto student_logits = reference->student().forward_tensor(images.detach());
  torch::Tensor teacher_logits;
  {
    torch::NoGradGuard no_grad;
    teacher_logits = teacher_of(*reference).forward_tensor(images.detach());
  }
  auto p_t = torch::softmax(teacher_logits / 6.0, 1);
  auto kd = 36.0 * (p_t * (torch::log(p_t) - torch::log_softmax(student_logits / 6.0, 1))).sum() / 8.0;
  auto student_params = trainable(reference->student());
  auto student_grads = torch::autograd::grad({kd}, student_params);

  CHECK(value(logged, "generator.loss") == Approx(generator_loss.item<double>()).epsilon(1e-5));
  // The teacher is untrained, so the KL is tiny (about 3e-4) and float32 cancellation in it
  // leaves an absolute error near 1e-7: compare to that, not to a relative 1e-5.
  CHECK(value(logged, "distill.loss_kl") == Approx(kd.item<double>()).epsilon(1e-5).margin(2e-6));
  CHECK(value(logged, "distill.loss") == Approx(kd.item<double>()).epsilon(1e-5).margin(2e-6));
  auto generator_now = trainable(algorithm->generator());
  REQUIRE(generator_now.size() == generator_params.size());
  for (size_t i = 0; i < generator_now.size(); ++i) {
    CHECK(torch::allclose(generator_now[i], generator_params[i] - generator_lr * generator_grads[i], 1e-5, 1e-6));
  }
  auto student_now = trainable(algorithm->student());
  REQUIRE(student_now.size() == student_params.size());
  bool moved = false;
  for (size_t i = 0; i < student_now.size(); ++i) {
    CHECK(torch::allclose(student_now[i], student_params[i] - student_lr * student_grads[i], 1e-5, 1e-6));
    moved = moved || !torch::equal(student_now[i], student_params[i]);
  }
  CHECK(moved);
  // The teacher: frozen, no gradient, unchanged.
  CHECK(unchanged(teacher_of(*algorithm).parameters(), teacher_before));
  for (const auto& p : teacher_of(*algorithm).parameters()) CHECK_FALSE(p.grad().defined());
  CHECK_FALSE(teacher_of(*algorithm).is_training());
}

TEST_CASE("DataFreeDistillation: the generator's loss reaches the generator, never the student", "[datafree]") {
  torch::manual_seed(0);
  auto algorithm = build(dfad_config());
  algorithm->train();
  auto images = algorithm->generator().sample(4);
  LossMap losses = algorithm->generator_losses(images);
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].second.item<double>() < 0);  // -L1(S, T): the generator seeks disagreement
  total_loss(losses).backward();
  for (const auto& p : trainable(algorithm->generator())) CHECK(p.grad().defined());
  for (const auto& p : algorithm->student().parameters()) {
    CHECK(p.requires_grad());  // thawed again after the generator's pass
    CHECK_FALSE(p.grad().defined());
  }
  for (const auto& p : teacher_of(*algorithm).parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("DataFreeDistillation step: student_iter student steps and one generator step, each its own", "[datafree]") {
  torch::manual_seed(0);
  auto algorithm = build(dfad_config());
  algorithm->train();
  Batch batch{torch::zeros({6, 1, 12, 12}), torch::zeros({6}, torch::kLong), {}};
  auto teacher_before = copies(teacher_of(*algorithm).parameters());

  // A frozen generator (lr 0): only the student moves, in student_iter = 3 steps.
  auto optim = sgd(*algorithm, 0.1, 0.0);
  auto student_before = copies(trainable(algorithm->student()));
  auto generator_before = copies(trainable(algorithm->generator()));
  LossMap logged = algorithm->train_step(batch, *optim);
  CHECK(optim->at("architecture").inner_count() == 3);
  CHECK(optim->at("generator").inner_count() == 1);
  CHECK(unchanged(trainable(algorithm->generator()), generator_before));
  CHECK_FALSE(unchanged(trainable(algorithm->student()), student_before));
  REQUIRE(logged.size() == 4);  // student first (student_train_first), then the generator
  CHECK(logged[0].first == "distill.loss_l1");
  CHECK(logged[3].first == "generator.loss");
  CHECK(value(logged, "generator.loss") == Approx(value(logged, "generator.loss_l1")));
  CHECK(value(logged, "generator.loss") < 0);

  // A frozen student: only the generator moves.
  optim = sgd(*algorithm, 0.0, 0.1);
  student_before = copies(trainable(algorithm->student()));
  generator_before = copies(trainable(algorithm->generator()));
  algorithm->train_step(batch, *optim);
  CHECK(unchanged(trainable(algorithm->student()), student_before));
  CHECK_FALSE(unchanged(trainable(algorithm->generator()), generator_before));
  CHECK(unchanged(teacher_of(*algorithm).parameters(), teacher_before));

  // predict is the student's.
  algorithm->eval();
  Batch eval{torch::randn({3, 1, 12, 12}), torch::zeros({3}, torch::kLong), {}};
  CHECK(torch::equal(algorithm->predict(eval), algorithm->student().predict(eval)));

  // One optimiser for both is an error that says what to configure.
  Json plain = {{"optimizer", {{"type", "SGD"}, {"lr", 0.1}}}};
  Args args = Args::of(plain, "optim_wrapper");
  auto single = build_optim_wrapper(args, *algorithm);
  CHECK_THROWS_WITH(algorithm->train_step(batch, *single), Catch::Contains("SeparateOptimWrapperConstructor"));
}

TEST_CASE("Data-free distillation config errors name the key at fault", "[datafree]") {
  Json no_generator = dafl_config();
  no_generator.erase("generator");
  CHECK_THAT(build_error(no_generator), Catch::Contains("model.generator") && Catch::Contains("missing"));

  Json not_a_generator = dafl_config();
  not_a_generator["generator"] = classifier(8, 4);
  CHECK_THAT(build_error(not_a_generator), Catch::Contains("model.generator.type") && Catch::Contains("generator"));

  Json bad_size = dafl_config();
  bad_size["generator"]["img_size"] = 10;
  CHECK_THAT(build_error(bad_size), Catch::Contains("model.generator") && Catch::Contains("scale_factor^2"));

  Json dafl_iter = dafl_config();
  dafl_iter["student_iter"] = 5;
  CHECK_THAT(build_error(dafl_iter), Catch::Contains("model.student_iter"));

  Json zero_iter = dfad_config();
  zero_iter["student_iter"] = 0;
  CHECK_THAT(build_error(zero_iter), Catch::Contains("model.student_iter") && Catch::Contains(">= 1"));

  Json no_teachers = dafl_config();
  no_teachers["teachers"] = Json::object();
  CHECK_THAT(build_error(no_teachers), Catch::Contains("model.teachers"));

  Json bad_source = dafl_config();
  bad_source["generator_distiller"]["teacher_recorders"]["gap"]["source"] = "res.neck.gapp";
  CHECK_THAT(build_error(bad_source), Catch::Contains("res.neck.gapp") && Catch::Contains("res.neck.gap"));

  Json no_student_recorder = dafl_config();
  no_student_recorder["distiller"]["student_recorders"] = Json::object();
  no_student_recorder["distiller"]["loss_forward_mappings"]["loss_kl"]["preds_S"] = from(false, "fc");
  CHECK_THAT(build_error(no_student_recorder), Catch::Contains("distiller.student_recorders"));

  Json unknown_key = dafl_config();
  unknown_key["teachers"]["res"]["ckpt"] = "x.pth";
  CHECK_THAT(build_error(unknown_key), Catch::Contains("model.teachers.res.ckpt") && Catch::Contains("ckpt_path"));
}

TEST_CASE("DAFL end to end: two optimisers train, the checkpoint tests the student", "[datafree][runner]") {
  register_all();
  auto dir = fs::temp_directory_path() / "razor_test_dafl_run";
  fs::remove_all(dir);
  Json model = dafl_config();
  Json data = {{"batch_size", 16},
               {"shuffle", false},
               {"dataset",
                {{"type", "Synthetic"}, {"num_samples", 32}, {"num_classes", 5}, {"shape", {1, 12, 12}}, {"seed", 1}}}};
  Json tree = {{"seed", 0},
               {"device", "cpu"},
               {"num_threads", 2},
               {"work_dir", dir.string()},
               {"model", model},
               {"train_dataloader", data},
               {"val_dataloader", data},
               {"test_dataloader", data},
               {"optim_wrapper",
                {{"constructor", "SeparateOptimWrapperConstructor"},
                 {"architecture", {{"optimizer", {{"type", "AdamW"}, {"lr", 1e-2}}}}},
                 {"generator", {{"optimizer", {{"type", "AdamW"}, {"lr", 1e-3}}}}}}},
               {"param_scheduler", Json::array({{{"type", "LinearLR"}, {"start_factor", 0.5}, {"end", 2}, {"by_epoch", false}}})},
               {"train_cfg", {{"type", "EpochBasedTrainLoop"}, {"max_epochs", 2}}},
               {"default_hooks", {{"logger", {{"type", "LoggerHook"}, {"interval", 1}}}}}};
  auto config = std::make_shared<Config>();
  config->tree = tree;
  Metrics trained;
  {
    Runner runner(config);
    runner.train();
    trained = runner.val();
  }
  std::ifstream in(dir / "scalars.jsonl");
  std::string line;
  int train_records = 0;
  while (std::getline(in, line)) {
    auto record = Json::parse(line);
    if (record["mode"] != "train") continue;
    ++train_records;
    for (const char* key : {"generator.loss", "distill.loss_kl", "architecture.lr", "generator.lr"}) CHECK(record.contains(key));
    if (record["iter"] == 1) {
      CHECK(record["architecture.lr"].get<double>() == Approx(5e-3));  // LinearLR from 0.5 on both
      CHECK(record["generator.lr"].get<double>() == Approx(5e-4));
    }
  }
  CHECK(train_records == 4);
  REQUIRE(fs::exists(dir / "epoch_2.pth"));

  // `razor test` on the checkpoint: the student's accuracy, as the run's last validation.
  Runner tester(config);
  tester.load_weights((dir / "epoch_2.pth").string());
  Metrics tested = tester.test();
  REQUIRE(trained.count("accuracy/top1"));
  CHECK(tested.at("accuracy/top1") == Approx(trained.at("accuracy/top1")));
}
