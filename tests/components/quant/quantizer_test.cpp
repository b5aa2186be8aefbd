// Quantiser placement on razor's ops (components/quant/quantizer.h): the rules of each
// backend on ResNet-20 and MobileNetV2, counted by hand from the architectures; a small net
// whose quantised forward is recomputed with ATen's fake-quant functions; concat inputs
// sharing one scale; scopes and their errors.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <set>

#include "components/architectures/image_classifier.h"
#include "components/nn/nn.h"
#include "components/quant/quant.h"
#include "tests/components/architectures/build.h"
#include "tests/components/quant/shipped_qconfig.h"

using namespace razor;
using namespace razor::quant;
using razor::test::build_model;
using razor::test::classifier;
using razor::test::shipped_qconfig;

namespace {

QuantizerOptions options_for(const std::string& type, Json extra = Json::object()) {
  Json table = {{"type", type}, {"global_qconfig", shipped_qconfig(type == "TensorRTQuantizer" ? "qint8" : "quint8")}};
  table.update(extra);
  Args args = Args::of(table, "model.quantizer");
  return QuantizerOptions::parse(args);
}

std::shared_ptr<ImageClassifier> resnet20() {
  return std::dynamic_pointer_cast<ImageClassifier>(
      build_model(classifier({{"type", "ResNet_CIFAR"}, {"depth", 20}, {"in_channels", 1}}, 64)));
}

std::shared_ptr<QuantPlan> prepare_classifier(ImageClassifier& model, const QuantizerOptions& options,
                                              std::vector<int64_t> shape = {1, 1, 28, 28}) {
  model.eval();
  return prepare(model, options, torch::zeros(shape), [&](const torch::Tensor& x) { return model.forward_tensor(x); });
}

std::set<const FakeQuantizer*> distinct(const QuantPlan& plan) {
  std::set<const FakeQuantizer*> out;
  for (const auto& p : plan.activations) out.insert(p.fake_quant.get());
  return out;
}

int64_t node(const QuantPlan& plan, const std::string& path, int64_t call = 0) {
  const int64_t n = plan.flow.find(path, call);
  REQUIRE(n >= 0);
  return n;
}

}  // namespace

TEST_CASE("Native placement on ResNet-20: one quantiser per conv-BN-ReLU chain, residual add and logits", "[quant][quantizer]") {
  register_quant();
  auto model = resnet20();
  auto plan = prepare_classifier(*model, options_for("NativeQuantizer"));
  // 19 convs, 2 downsample convs, the classifier: 22 weights; every conv but none of the
  // linear is followed by a BN, folded in.
  CHECK(plan->weight_fake_quants.size() == 22);
  CHECK(plan->folded_bn.size() == 21);
  // The model input; the stem's chain; per block conv1-bn1-relu, conv2-bn2 and add-relu
  // (9 blocks), plus the two downsample conv-BNs; the logits.
  CHECK(plan->activations.size() == 1 + 1 + 27 + 2 + 1);
  CHECK(distinct(*plan).size() == plan->activations.size());
  CHECK(plan->input_quantizer(node(*plan, "backbone.conv1"), 0) != nullptr);
  // The shared ReLU of a block: its first call ends conv1-bn1-relu, its second add-relu;
  // each call has a quantiser of its own.
  auto* first = plan->output_quantizer(node(*plan, "backbone.layer1.0.relu", 0));
  auto* second = plan->output_quantizer(node(*plan, "backbone.layer1.0.relu", 1));
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first != second);
  // Fused chains have no quantiser in between; pooling and flatten keep their input's scale.
  CHECK(plan->output_quantizer(node(*plan, "backbone.layer1.0.conv1")) == nullptr);
  CHECK(plan->output_quantizer(node(*plan, "backbone.layer1.0.bn1")) == nullptr);
  CHECK(plan->output_quantizer(node(*plan, "backbone.layer1.0.bn2")) != nullptr);
  CHECK(plan->output_quantizer(node(*plan, "backbone.layer2.0.downsample.1")) != nullptr);
  CHECK(plan->output_quantizer(node(*plan, "neck.gap")) == nullptr);
  CHECK(plan->output_quantizer(node(*plan, "neck.flatten")) == nullptr);
  CHECK(plan->output_quantizer(node(*plan, "head.fc")) != nullptr);
  // The state dict names them after their op.
  std::set<std::string> keys;
  for (const auto& item : model->named_buffers()) keys.insert(item.key());
  CHECK(keys.count("backbone.conv1.weight_fake_quant.scale"));
  CHECK(keys.count("backbone.layer1.0.relu.output_fake_quant_call1.scale"));
  CHECK(keys.count("backbone.conv1.input_fake_quant.zero_point"));
}

TEST_CASE("OpenVINO placement drops the logits' quantiser, TensorRT quantises conv and linear inputs only", "[quant][quantizer]") {
  register_quant();
  {
    auto model = resnet20();
    auto plan = prepare_classifier(*model, options_for("OpenVINOQuantizer"));
    CHECK(plan->activations.size() == 31);
    CHECK(plan->output_quantizer(node(*plan, "head.fc")) == nullptr);
    CHECK(plan->weight_fake_quants.size() == 22);
  }
  {
    auto model = resnet20();
    auto plan = prepare_classifier(*model, options_for("TensorRTQuantizer"));
    CHECK(plan->weight_fake_quants.size() == 22);
    CHECK(plan->folded_bn.size() == 21);
    // Values read by a conv or linear: the input, each block's input and its relu output
    // (9 blocks), the pooled features: 20; the downsample convs read their block's input
    // through the block conv1's quantiser: 22 attachment points.
    CHECK(distinct(*plan).size() == 20);
    CHECK(plan->activations.size() == 22);
    for (const auto& p : plan->activations) {
      CHECK(p.input == 0);
      const std::string& type = plan->flow.nodes[static_cast<size_t>(p.node)].type;
      CHECK((type == "Conv2d" || type == "Linear"));
      CHECK(p.fake_quant->dtype() == QDType::QInt8);
    }
    CHECK(plan->input_quantizer(node(*plan, "backbone.layer2.0.conv1"), 0) ==
          plan->input_quantizer(node(*plan, "backbone.layer2.0.downsample.0"), 0));
    CHECK(plan->input_quantizer(node(*plan, "backbone.layer1.0.add"), 0) == nullptr);
  }
}

TEST_CASE("MobileNetV2: OpenVINO fuses conv-BN-ReLU6, native quantises before the ReLU6", "[quant][quantizer]") {
  register_quant();
  auto build = [] {
    return std::dynamic_pointer_cast<ImageClassifier>(build_model(
        classifier({{"type", "MobileNetV2"}, {"widen_factor", 0.5}, {"in_channels", 1}}, 1280, 10)));
  };
  auto model = build();
  auto plan = prepare_classifier(*model, options_for("OpenVINOQuantizer"), {1, 1, 32, 32});
  auto native_model = build();
  auto native = prepare_classifier(*native_model, options_for("NativeQuantizer"), {1, 1, 32, 32});
  int64_t relu6 = 0, convs = 0, adds = 0;
  for (size_t n = 0; n < plan->flow.nodes.size(); ++n) {
    const auto& node = plan->flow.nodes[n];
    if (node.type == "Conv2d") ++convs;
    if (node.type == "Add") ++adds;
    if (node.type != "ReLU6") continue;
    ++relu6;
    // OpenVINO: the chain's quantiser after the ReLU6; native: after the BN before it.
    CHECK(plan->output_quantizer(static_cast<int64_t>(n)) != nullptr);
    CHECK(native->output_quantizer(static_cast<int64_t>(n)) == nullptr);
    CHECK(native->output_quantizer(node.inputs[0]) != nullptr);
  }
  CHECK(relu6 > 0);
  CHECK(plan->weight_fake_quants.size() == static_cast<size_t>(convs + 1));
  // Every conv has its BN; every chain and every residual add ends in one quantiser, plus
  // the model input; no quantiser on the logits.
  CHECK(plan->folded_bn.size() == static_cast<size_t>(convs));
  CHECK(plan->activations.size() == static_cast<size_t>(1 + convs + adds));
  CHECK(native->activations.size() == static_cast<size_t>(1 + convs + adds + 1));
}

namespace {

// conv -> BN -> ReLU -> pool -> flatten -> linear, and a second branch concatenated.
struct TinyNet : nn::Module {
  TinyNet() : nn::Module("TinyNet") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 4, 3).with_padding(1).with_bias(false)));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(4));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    side = register_module("side", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 3, 1)));
    cat = register_module("cat", std::make_shared<nn::Concat>(1));
    pool = register_module("pool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    flatten = register_module("flatten", std::make_shared<nn::Flatten>(1));
    fc = register_module("fc", std::make_shared<nn::Linear>(7, 5));
    nn::assign_paths(*this);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    auto a = (*relu)((*bn)((*conv)(x)));
    auto b = (*side)(x);
    return (*fc)((*flatten)((*pool)((*cat)({a, b}))));
  }
  std::shared_ptr<nn::Conv2d> conv, side;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::ReLU> relu;
  std::shared_ptr<nn::Concat> cat;
  std::shared_ptr<nn::AdaptiveAvgPool2d> pool;
  std::shared_ptr<nn::Flatten> flatten;
  std::shared_ptr<nn::Linear> fc;
};

torch::Tensor fq_tensor(const torch::Tensor& x, const FakeQuantizer& fq) {
  return torch::fake_quantize_per_tensor_affine(x, fq.scale().item<double>(), fq.zero_point().item<int64_t>(),
                                                fq.quant_min(), fq.quant_max());
}

torch::Tensor fq_weight(const torch::Tensor& w, const FakeQuantizer& fq) {
  return torch::fake_quantize_per_channel_affine(w, fq.scale(), fq.zero_point(), 0, fq.quant_min(), fq.quant_max());
}

}  // namespace

TEST_CASE("A quantised forward equals the same computation written with ATen's fake-quant ops", "[quant][quantizer]") {
  register_quant();
  torch::manual_seed(0);
  TinyNet net;
  {
    torch::NoGradGuard g;
    net.bn->running_mean.copy_(torch::randn({4}) * 0.1);
    net.bn->running_var.copy_(torch::rand({4}) + 0.5);
    net.bn->weight.copy_(torch::rand({4}) + 0.5);
  }
  net.eval();
  const auto x = torch::randn({4, 2, 6, 6});
  const auto float_out = net(x);
  auto plan = prepare(net, options_for("NativeQuantizer"), torch::zeros({1, 2, 6, 6}),
                      [&](const torch::Tensor& t) { return net(t); });
  // Points: the input before conv and before side (one quantiser), the outputs of the
  // conv-bn-relu chain and of side (one quantiser: they meet in the concat), the logits.
  CHECK(plan->activations.size() == 5);
  CHECK(distinct(*plan).size() == 3);
  const auto* relu_q = plan->output_quantizer(node(*plan, "relu"));
  const auto* side_q = plan->output_quantizer(node(*plan, "side"));
  REQUIRE(relu_q);
  CHECK(relu_q == side_q);
  CHECK(plan->input_quantizer(node(*plan, "conv"), 0) == plan->input_quantizer(node(*plan, "side"), 0));

  // Observe once, then freeze, and recompute by hand.
  net(x);
  enable_observer(net, false);
  const auto got = net(x);
  const FakeQuantizer& in_q = *plan->input_quantizer(node(*plan, "conv"), 0);
  const FakeQuantizer& fc_q = *plan->output_quantizer(node(*plan, "fc"));
  const auto xq = fq_tensor(x, in_q);
  const auto factor = net.bn->weight / torch::sqrt(net.bn->running_var + net.bn->eps());
  const auto wq = fq_weight(net.conv->weight * factor.view({4, 1, 1, 1}), *plan->weight_fake_quants.at(node(*plan, "conv")));
  auto a = torch::conv2d(xq, wq, {}, 1, 1) / factor.view({1, 4, 1, 1});
  a = torch::batch_norm(a, net.bn->weight, net.bn->bias, net.bn->running_mean, net.bn->running_var, false, 0.1, 1e-5, false);
  a = fq_tensor(torch::relu(a), *relu_q);
  auto b = fq_tensor(torch::conv2d(xq, fq_weight(net.side->weight, *plan->weight_fake_quants.at(node(*plan, "side"))),
                                   net.side->bias),
                     *side_q);
  auto pooled = torch::cat({a, b}, 1).mean({2, 3});
  auto logits = torch::linear(pooled, fq_weight(net.fc->weight, *plan->weight_fake_quants.at(node(*plan, "fc"))), net.fc->bias);
  const auto expected = fq_tensor(logits, fc_q);
  CHECK(torch::allclose(got, expected, 1e-5, 1e-5));
  // Quantisation off: the float model again.
  enable_fake_quant(net, false);
  CHECK(torch::allclose(net(x), float_out, 1e-5, 1e-5));
}

TEST_CASE("ignored_scopes and target_scopes choose the quantised ops, a scope naming nothing is an error", "[quant][quantizer]") {
  register_quant();
  {
    auto model = resnet20();
    auto plan = prepare_classifier(*model, options_for("OpenVINOQuantizer", {{"ignored_scopes", {"head.fc", "{re}backbone\\.layer3\\..*"}}}));
    for (const auto& [n, fq] : plan->weight_fake_quants) {
      const std::string& path = plan->flow.nodes[static_cast<size_t>(n)].path;
      CHECK(path != "head.fc");
      CHECK(path.rfind("backbone.layer3.", 0) != 0);
    }
    CHECK(plan->weight_fake_quants.size() == 22 - 1 - 7);
  }
  {
    auto model = resnet20();
    auto plan = prepare_classifier(*model, options_for("TensorRTQuantizer", {{"target_scopes", {"head.fc"}}}));
    CHECK(plan->weight_fake_quants.size() == 1);
    CHECK(plan->activations.size() == 1);
  }
  auto model = resnet20();
  CHECK_THROWS_WITH(prepare_classifier(*model, options_for("NativeQuantizer", {{"ignored_scopes", {"backbone.layer1.0.conv3"}}})),
                    Catch::Contains("ignored_scopes: \"backbone.layer1.0.conv3\" names no op of the model") &&
                        Catch::Contains("backbone.layer1.0.conv1"));
}

TEST_CASE("Quantizer options: overrides, bit widths and the errors that name the key", "[quant][quantizer]") {
  register_quant();
  // Academic: a qconfig per type and per module name.
  Json low = shipped_qconfig();
  low["w_qscheme"]["bit"] = 4;
  Json table = {{"type", "mmrazor.AcademicQuantizer"},
                {"qconfig_mapping",
                 {{"_global_", shipped_qconfig()},
                  {"object_type", Json::array({Json::array({"torch.nn.Linear", low})})},
                  {"module_name", {{"backbone.conv1", low}}}}}};
  Args args = Args::of(table, "model.quantizer");
  auto model = resnet20();
  auto plan = prepare_classifier(*model, QuantizerOptions::parse(args));
  for (const auto& [n, fq] : plan->weight_fake_quants) {
    const std::string& path = plan->flow.nodes[static_cast<size_t>(n)].path;
    const bool low_bits = path == "head.fc" || path == "backbone.conv1";
    CHECK(fq->quant_max() == (low_bits ? 7 : 127));
  }
  // Academic quantises conv and linear chains only: no quantiser after a residual add.
  CHECK(plan->output_quantizer(node(*plan, "backbone.layer1.0.relu", 1)) == nullptr);

  // NNCF's CPU preset: 8-bit weights in a 7-bit range.
  auto cpu_model = resnet20();
  auto cpu = prepare_classifier(*cpu_model, options_for("OpenVINOQuantizer", {{"target_device", "CPU"}}));
  for (const auto& [n, fq] : cpu->weight_fake_quants) {
    CHECK(fq->quant_min() == -63);
    CHECK(fq->quant_max() == 63);
  }

  auto fails = [](Json t) {
    Args a = Args::of(t, "model.quantizer");
    return razor::test::error_of([&] { QuantizerOptions::parse(a); });
  };
  CHECK_THAT(fails({{"type", "FooQuantizer"}, {"global_qconfig", shipped_qconfig()}}),
             Catch::Contains("model.quantizer.type") && Catch::Contains("unknown quantizer \"FooQuantizer\""));
  CHECK_THAT(fails({{"type", "NativeQuantizer"}}), Catch::Contains("global_qconfig"));
  Json missing = shipped_qconfig();
  missing.erase("a_fake_quant");
  CHECK_THAT(fails({{"type", "NativeQuantizer"}, {"global_qconfig", missing}}), Catch::Contains("a_fake_quant"));
  CHECK_THAT(fails({{"type", "NativeQuantizer"}, {"global_qconfig", shipped_qconfig()}, {"target_device", "GPU"}}),
             Catch::Contains("target_device") && Catch::Contains("\"ANY\" or \"CPU\""));
  CHECK_THAT(fails({{"type", "NativeQuantizer"}, {"global_qconfig", shipped_qconfig()}, {"ignored_scopes", {"{re}(("}}}),
             Catch::Contains("ignored_scopes") && Catch::Contains("not a regular expression"));
  CHECK_THAT(fails({{"type", "NativeQuantizer"}, {"global_qconfig", shipped_qconfig()}, {"weight_bits", {{"head.fc", 9}}}}),
             Catch::Contains("weight_bits.head.fc") && Catch::Contains("2..8"));
}

TEST_CASE("onnxruntime placement: ReLU6 chains fused, pooling requantised, biases on the int32 grid razor computes",
          "[quant][quantizer]") {
  register_quant();
  auto model = std::dynamic_pointer_cast<ImageClassifier>(build_model(
      classifier({{"type", "MobileNetV2"}, {"widen_factor", 0.25}, {"in_channels", 1}}, 1280, 10)));
  Json extra = {{"global_qconfig", shipped_qconfig("quint8")}};
  extra["global_qconfig"]["a_qscheme"]["is_symmetry"] = false;
  auto plan = prepare_classifier(*model, options_for("ONNXRuntimeQuantizer", extra), {1, 1, 32, 32});
  // Calibrate on one batch, then freeze: the scales are what they would be after PTQ.
  torch::manual_seed(0);
  {
    torch::NoGradGuard no_grad;
    model->forward_tensor(torch::randn({4, 1, 32, 32}));
  }
  for (const auto& p : plan->activations) p.fake_quant->disable_observer();

  int64_t relu6 = 0, weighted = 0;
  for (size_t n = 0; n < plan->flow.nodes.size(); ++n) {
    const auto& node = plan->flow.nodes[n];
    if (node.type == "ReLU6") {
      ++relu6;
      CHECK(plan->output_quantizer(static_cast<int64_t>(n)) != nullptr);  // after the ReLU6, as OpenVINO
    }
    if (node.type == "AdaptiveAvgPool2d") CHECK(plan->output_quantizer(static_cast<int64_t>(n)) != nullptr);
    auto* op = dynamic_cast<nn::WeightedOp*>(node.module);
    if (!op) continue;
    ++weighted;
    // Every quantised op's bias (the folded one for convs) lies on s_input * s_weight.
    const auto input = plan->bias_input_quants.find(static_cast<int64_t>(n));
    REQUIRE(input != plan->bias_input_quants.end());
    const auto& weight_fq = plan->weight_fake_quants.at(static_cast<int64_t>(n));
    const torch::Tensor bias = op->effective_weight().bias;
    const torch::Tensor scale = bias_scale(*input->second, *weight_fq, bias.numel());
    const torch::Tensor steps = bias / scale;
    CHECK((steps - torch::round(steps)).abs().max().item<double>() < 1e-3);
    CHECK(torch::equal(bias_integers(bias, scale) * scale, bias));  // what the export writes, to the bit
  }
  CHECK(relu6 == 35);
  CHECK(weighted == 53);  // 52 convs and the classifier

  // The control: the native placement leaves biases in float, off the grid.
  auto native_model = std::dynamic_pointer_cast<ImageClassifier>(build_model(
      classifier({{"type", "MobileNetV2"}, {"widen_factor", 0.25}, {"in_channels", 1}}, 1280, 10)));
  auto native = prepare_classifier(*native_model, options_for("NativeQuantizer"), {1, 1, 32, 32});
  CHECK(native->bias_input_quants.empty());
}
