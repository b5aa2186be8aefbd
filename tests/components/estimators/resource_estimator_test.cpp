// ResourceEstimator: MMRazor's FLOPs/params conventions, checked against MMRazor's golden
// value and closed forms written here from the architectures' definitions.
#include "components/estimators/resource_estimator.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "components/nn/module.h"
#include "tests/components/architectures/build.h"
#include "tests/components/estimators/resnet20_closed_form.h"

using namespace razor;
using razor::test::error_of;

namespace {

/// A razor Model around one module, as the tests need no loss.
class Wrapped : public Model {
 public:
  explicit Wrapped(std::shared_ptr<nn::Module> net)
      : net_(register_module("net", std::move(net))) {}
  LossMap loss(const Batch&) override { return {}; }
  torch::Tensor predict(const Batch& batch) override { return forward_tensor(batch.inputs); }
  torch::Tensor forward_tensor(const torch::Tensor& inputs) override { return (*net_)(inputs); }

 private:
  std::shared_ptr<nn::Module> net_;
};

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, bool bias = true) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in, out, k).with_bias(bias));
}

/// One conv called twice on its own output.
class Twice : public nn::Module {
 public:
  Twice() : nn::Module("Twice") {
    conv_ = register_module(
        "conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 3, 3).with_padding(1)));
  }

 protected:
  torch::Tensor forward(const torch::Tensor& x) override { return (*conv_)((*conv_)(x)); }

 private:
  std::shared_ptr<nn::Conv2d> conv_;
};

/// A supernet's choice block in miniature: both candidates are children, one runs.
class Choice : public nn::Module {
 public:
  Choice() : nn::Module("Choice") {
    small_ = register_module("small", conv(3, 8, 1));
    large_ = register_module("large", conv(3, 8, 5));
  }
  bool use_large = false;

 protected:
  torch::Tensor forward(const torch::Tensor& x) override {
    return use_large ? (*large_)(x) : (*small_)(x);
  }

 private:
  std::shared_ptr<nn::Conv2d> small_, large_;
};

const LayerResources& row(const ResourceReport& report, const std::string& path) {
  for (const auto& layer : report.layers) {
    if (layer.path == path) return layer;
  }
  FAIL("no row " << path);
  static LayerResources none;
  return none;
}

bool has_row(const ResourceReport& report, const std::string& path) {
  for (const auto& layer : report.layers) {
    if (layer.path == path) return true;
  }
  return false;
}

std::shared_ptr<Model> resnet20() {
  auto model = std::dynamic_pointer_cast<Model>(test::build_model(
      test::classifier(Json{{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)));
  REQUIRE(model);
  return model;
}

}  // namespace

TEST_CASE("Estimator: Conv2d(3, 32, 3) on 1x3x224x224 gives MMRazor's 44.158 M / 0.001 M",
          "[estimator]") {
  Wrapped model(conv(3, 32, 3));
  ResourceEstimator estimator;  // MMRazor's defaults: 1x3x224x224, M
  const ResourceReport report = estimator.estimate_report(model);
  CHECK(report.raw_flops == 864.0 * 222 * 222 + 32.0 * 222 * 222);
  CHECK(report.raw_flops == 44158464.0);
  CHECK(report.raw_params == 3 * 32 * 9 + 32);
  CHECK(report.totals.flops == 44.158);
  CHECK(report.totals.params == 0.001);
  CHECK(report.totals.latency == 0.0);
  REQUIRE(report.layers.size() == 1);
  CHECK(report.layers[0].path == "net");
  CHECK(report.layers[0].type == "Conv2d");
  CHECK(report.layers[0].output_shape == std::vector<int64_t>{1, 32, 222, 222});

  const Resources totals = estimator.estimate(model);
  CHECK(totals.flops == 44.158);
  CHECK(totals.params == 0.001);
}

TEST_CASE("Estimator: ResNet-20 on 1x1x28x28 matches the closed form", "[estimator]") {
  auto model = resnet20();
  const test::ClosedForm expected = test::resnet20_closed_form(28);
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}));
  const ResourceReport report = estimator.estimate_report(*model);
  CHECK(report.raw_flops == expected.flops);
  CHECK(report.raw_params == expected.params);
  CHECK(report.raw_params == test::num_parameters(*model));
  CHECK(report.raw_params == 272186);
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", expected.flops / 1e6);
  CHECK(report.totals.flops == std::stod(text));
  CHECK(report.totals.params == 0.272);
  double summed = 0;
  for (const auto& layer : report.layers) summed += layer.flops;
  CHECK(summed == report.raw_flops);

  SECTION("rows are the dotted module paths with their output shapes") {
    const auto& stem = row(report, "backbone.conv1");
    CHECK(stem.type == "Conv2d");
    CHECK(stem.output_shape == std::vector<int64_t>{1, 16, 28, 28});
    CHECK(stem.flops == 9.0 * 16 * 28 * 28);
    CHECK(stem.params == 9 * 16);
    const auto& shortcut = row(report, "backbone.layer2.0.downsample.0");
    CHECK(shortcut.output_shape == std::vector<int64_t>{1, 32, 14, 14});
    CHECK(row(report, "backbone.layer3.2.conv2").output_shape == std::vector<int64_t>{1, 64, 7, 7});
    CHECK(row(report, "backbone.layer1.0.bn1").flops == 2.0 * 16 * 28 * 28);
    CHECK(row(report, "neck.gap").flops == 64.0 * 7 * 7);
    CHECK(row(report, "head.fc").output_shape == std::vector<int64_t>{1, 10});
    CHECK(row(report, "head.fc").flops == 640.0);
    CHECK(row(report, "head.fc").params == 650);
    // Ops without a counter are listed and count nothing; containers are not rows.
    CHECK(row(report, "backbone.layer1.0.add").flops == 0.0);
    CHECK(row(report, "neck.flatten").flops == 0.0);
    CHECK_FALSE(has_row(report, "backbone.layer1.0"));
    CHECK_FALSE(has_row(report, "backbone"));
    // The loss module does not run in forward_tensor.
    CHECK_FALSE(has_row(report, "head.loss_module"));
    // BasicBlock calls its ReLU twice: one row, two calls.
    CHECK(row(report, "backbone.layer1.0.relu").calls == 2);
    CHECK(row(report, "backbone.layer1.0.relu").flops == 2.0 * 16 * 28 * 28);
  }

  SECTION("FLOPs are per sample: a batch of 4 counts the same, params too") {
    ResourceEstimator batched(ResourceEstimatorOptions().with_input_shape({4, 1, 28, 28}));
    const ResourceReport four = batched.estimate_report(*model);
    CHECK(four.raw_flops == report.raw_flops);
    CHECK(four.raw_params == report.raw_params);
    CHECK(row(four, "backbone.conv1").output_shape == std::vector<int64_t>{4, 16, 28, 28});
  }
}

TEST_CASE("Estimator: leaves the model as it found it (mode, statistics, hooks)", "[estimator]") {
  auto model = resnet20();
  model->train();
  auto& bn = dynamic_cast<nn::BatchNorm2d&>(nn::find_module(*model, "backbone.bn1"));
  bn.eval();  // one module in eval inside a training model (a frozen part) stays so
  auto& stem = nn::find_module(*model, "backbone.conv1");
  const torch::Tensor mean_before = bn.running_mean.clone();
  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({2, 1, 28, 28}));
  estimator.estimate(*model);
  CHECK(model->is_training());
  CHECK(nn::find_module(*model, "backbone.layer1.0.bn1").is_training());
  CHECK_FALSE(bn.is_training());
  CHECK(stem.num_hooks() == 0);
  CHECK(torch::equal(bn.running_mean, mean_before));  // ran in eval mode
  CHECK(model->named_parameters()["backbone.conv1.weight"].requires_grad());
}

TEST_CASE("Estimator: only the ops that ran count (a supernet's current choice)", "[estimator]") {
  auto choice = std::make_shared<Choice>();
  Wrapped model(choice);
  ResourceEstimator estimator(
      ResourceEstimatorOptions().with_input_shape({1, 3, 16, 16}).with_units(""));
  ResourceReport small = estimator.estimate_report(model);
  CHECK(small.raw_flops == (3.0 * 8 + 8) * 16 * 16);
  CHECK(small.raw_params == 3 * 8 + 8);
  CHECK(small.totals.flops == small.raw_flops);  // "" = raw counts
  CHECK(has_row(small, "net.small"));
  CHECK_FALSE(has_row(small, "net.large"));
  choice->use_large = true;
  ResourceReport large = estimator.estimate_report(model);
  CHECK(large.raw_flops == (75.0 * 8 + 8) * 12 * 12);
  CHECK(large.raw_params == 75 * 8 + 8);
}

TEST_CASE("Estimator: a module that runs twice counts its FLOPs and params twice (MMRazor)",
          "[estimator]") {
  Wrapped model(std::make_shared<Twice>());
  ResourceEstimator estimator(
      ResourceEstimatorOptions().with_input_shape({1, 3, 10, 10}).with_units(""));
  const ResourceReport report = estimator.estimate_report(model);
  // MMRazor's counters add `__params__` in the forward hook, once per call.
  const double once = (27.0 * 3 + 3) * 10 * 10;
  CHECK(report.raw_flops == 2 * once);
  CHECK(report.raw_params == 2 * (27 * 3 + 3));
  REQUIRE(report.layers.size() == 1);
  CHECK(report.layers[0].calls == 2);
  CHECK(report.layers[0].output_shape == std::vector<int64_t>{1, 3, 10, 10});
}

TEST_CASE("Estimator: units G, M, K and raw", "[estimator]") {
  Wrapped model(conv(3, 32, 3));
  auto with = [&](const std::string& units) {
    return ResourceEstimator(ResourceEstimatorOptions().with_units(units)).estimate(model);
  };
  CHECK(with("G").flops == 0.044);
  CHECK(with("G").params == 0.0);
  CHECK(with("M").flops == 44.158);
  CHECK(with("K").flops == 44158.464);
  CHECK(with("K").params == 0.896);
  CHECK(with("").flops == 44158464.0);
  CHECK(with("").params == 896.0);
  CHECK_THAT(error_of([] { ResourceEstimator(ResourceEstimatorOptions().with_units("T")); }),
             Catch::Contains("units") && Catch::Contains("\"T\""));
}

TEST_CASE("Estimator: latency is measured when asked", "[estimator]") {
  Wrapped model(conv(3, 8, 3));
  ResourceEstimator estimator(ResourceEstimatorOptions()
                                  .with_input_shape({1, 3, 32, 32})
                                  .with_measure_latency(true)
                                  .with_latency_warmup(1)
                                  .with_latency_iters(3));
  const Resources totals = estimator.estimate(model);
  CHECK(totals.latency > 0.0);
  CHECK(totals.flops == 0.202);  // (27 * 8 + 8) * 30 * 30 = 201,600
}

TEST_CASE("Estimator: options from an MMRazor-style estimator_cfg table", "[estimator]") {
  const std::string where = "train_cfg.estimator_cfg";
  SECTION("every key") {
    Args args = Args::of(Json{{"type", "ResourceEstimator"},
                              {"input_shape", {1, 3, 32, 32}},
                              {"units", "K"},
                              {"flops_params_cfg", {{"input_shape", {2, 1, 28, 28}}}},
                              {"latency_cfg", {{"max_iter", 7}, {"num_warmup", 2}}}},
                         where);
    const ResourceEstimatorOptions options = estimator_options_from(args);
    CHECK(options.input_shape == std::vector<int64_t>{2, 1, 28, 28});
    CHECK(options.units == "K");
    CHECK(options.measure_latency);
    CHECK(options.latency_iters == 7);
    CHECK(options.latency_warmup == 2);
  }
  SECTION("defaults; MMRazor's units table") {
    Args empty = Args::of(Json::object(), where);
    const ResourceEstimatorOptions defaults = estimator_options_from(empty);
    CHECK(defaults.input_shape == std::vector<int64_t>{1, 3, 224, 224});
    CHECK(defaults.units == "M");
    CHECK_FALSE(defaults.measure_latency);
    Args table =
        Args::of(Json{{"units", {{"flops", "G"}, {"params", "G"}, {"latency", "ms"}}}}, where);
    CHECK(estimator_options_from(table).units == "G");
  }
  SECTION("errors name the key") {
    auto error = [&](const Json& table) {
      return error_of([&] {
        Args args = Args::of(table, where);
        estimator_options_from(args);
      });
    };
    for (const Json& shape : {Json{1, 3, 224}, Json{1, 3, 0, 224}, Json{1, 3, 2.5, 224},
                              Json("1x3x224x224"), Json{1, 3, 224, 224, 1}}) {
      CHECK_THAT(error(Json{{"input_shape", shape}}),
                 Catch::Contains(where + ".input_shape") && Catch::Contains("4 positive"));
    }
    CHECK_THAT(error(Json{{"flops_params_cfg", {{"input_shape", {1, 1}}}}}),
               Catch::Contains(where + ".flops_params_cfg.input_shape"));
    CHECK_THAT(error(Json{{"type", "DPUEstimator"}}),
               Catch::Contains(where + ".type") && Catch::Contains("ResourceEstimator"));
    CHECK_THAT(error(Json{{"units", "T"}}), Catch::Contains(where + ".units"));
    CHECK_THAT(error(Json{{"units", {{"flops", "G"}, {"params", "M"}}}}),
               Catch::Contains(where + ".units") && Catch::Contains("one unit"));
    CHECK_THAT(error(Json{{"unit", "M"}}), Catch::Contains("unit") && Catch::Contains("units"));
    CHECK_THAT(error(Json{{"latency_cfg", {{"max_iters", 3}}}}), Catch::Contains("max_iters"));
    CHECK_THAT(error(Json{{"latency_cfg", {{"max_iter", 0}}}}),
               Catch::Contains(where + ".latency_cfg.max_iter"));
  }
  SECTION("code-built options are checked at construction") {
    CHECK_THAT(error_of([] {
                 ResourceEstimator(ResourceEstimatorOptions().with_input_shape({1, 3, 224}));
               }),
               Catch::Contains("input_shape") && Catch::Contains("[1, 3, 224]"));
  }
}
