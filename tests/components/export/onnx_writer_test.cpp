// The ONNX writer on a net with every op it knows: the float file computes what razor computes
// in onnxruntime and in OpenCV's DNN module; the QDQ file of the same net quantised computes
// razor's fake-quantised outputs in onnxruntime, with its int8 weights equal to the fake
// quantiser's integers; the FakeQuantize file carries each quantiser's closed-form range; and
// a model the writer cannot express fails naming the module, writing nothing.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include <onnx/onnx_pb.h>
#include <torch/torch.h>

#include "apps/onnx_export.h"
#include "components/export/onnx_writer.h"
#include "components/architectures/shufflenet_ops.h"
#include "components/nn/nn.h"
#include "components/quant/quant.h"
#include "engine/args.h"
#include "tests/components/quant/shipped_qconfig.h"
#include "tests/datasets/temp_dir.h"

using namespace razor;
using namespace razor::test;
namespace fs = std::filesystem;

namespace {

/// Every op type the writer knows, in one graph with a residual add, a product of two
/// branches and a concat.
struct AllOps : nn::Module {
  AllOps() : nn::Module("AllOps") {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 4, 3).with_padding(1).with_bias(false)));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(4));
    relu6 = register_module("relu6", std::make_shared<nn::ReLU6>());
    side = register_module("side", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 4, 1)));
    hswish = register_module("hswish", std::make_shared<nn::Hardswish>());
    add = register_module("add", std::make_shared<nn::Add>());
    maxpool = register_module("maxpool", std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions(2)));
    dw = register_module("dw", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 4, 3).with_padding(1).with_groups(4).with_bias(false)));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(4));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    sigmoid = register_module("sigmoid", std::make_shared<nn::Sigmoid>());
    tanh = register_module("tanh", std::make_shared<nn::Tanh>());
    mul = register_module("mul", std::make_shared<nn::Mul>());
    cat = register_module("cat", std::make_shared<nn::Concat>(1));
    hsigmoid = register_module("hsigmoid", std::make_shared<nn::Hardsigmoid>());
    avgpool = register_module("avgpool", std::make_shared<nn::AvgPool2d>(nn::Pool2dOptions(2)));
    gap = register_module("gap", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    flatten = register_module("flatten", std::make_shared<nn::Flatten>(1));
    dropout = register_module("dropout", std::make_shared<nn::Dropout>(0.5));
    identity = register_module("identity", std::make_shared<nn::Identity>());
    fc = register_module("fc", std::make_shared<nn::Linear>(8, 5));
    nn::assign_paths(*this);
    torch::NoGradGuard no_grad;
    for (auto* bn : {bn1.get(), bn2.get()}) {
      bn->running_mean.copy_(torch::randn({4}) * 0.2);
      bn->running_var.copy_(torch::rand({4}) + 0.5);
      bn->weight.copy_(torch::rand({4}) + 0.5);
      bn->bias.copy_(torch::randn({4}) * 0.1);
    }
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    auto s = (*add)({(*relu6)((*bn1)((*conv1)(x))), (*hswish)((*side)(x))});
    auto m = (*maxpool)(s);
    auto d = (*relu)((*bn2)((*dw)(m)));
    auto g = (*mul)({(*sigmoid)(d), (*tanh)(m)});
    auto h = (*hsigmoid)((*cat)({m, g}));
    return (*fc)((*identity)((*dropout)((*flatten)((*gap)((*avgpool)(h))))));
  }
  std::shared_ptr<nn::Conv2d> conv1, side, dw;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Module> relu6, hswish, add, maxpool, relu, sigmoid, tanh, mul, cat, hsigmoid, avgpool, gap,
      flatten, dropout, identity;
  std::shared_ptr<nn::Linear> fc;
};

nn::Dataflow trace(nn::Module& net, const torch::Tensor& x) {
  return nn::trace_dataflow(net, x.narrow(0, 0, 1), [&](const torch::Tensor& t) { return net(t); });
}

onnx::ModelProto read_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  onnx::ModelProto model;
  REQUIRE(model.ParseFromIstream(&in));
  return model;
}

const onnx::TensorProto& initializer(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& t : model.graph().initializer()) {
    if (t.name() == name) return t;
  }
  FAIL("no initializer " << name);
  throw std::logic_error("unreachable");
}

torch::Tensor values(const onnx::TensorProto& t, torch::Dtype dtype) {
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  return torch::from_blob(const_cast<char*>(t.raw_data().data()), dims, dtype).clone();
}

quant::QuantizerOptions native_options(Json qscheme_overrides = Json::object()) {
  Json qconfig = shipped_qconfig();
  qconfig["a_qscheme"].update(qscheme_overrides);
  Json table = {{"type", "NativeQuantizer"}, {"global_qconfig", qconfig}};
  Args args = Args::of(table, "model.quantizer");
  return quant::QuantizerOptions::parse(args);
}

/// The net quantised with the native placement and calibrated on `x`, observers then off.
std::shared_ptr<quant::QuantPlan> quantise(AllOps& net, const torch::Tensor& x, Json qscheme_overrides = Json::object()) {
  quant::register_quant();
  auto plan = quant::prepare(net, native_options(std::move(qscheme_overrides)), x.narrow(0, 0, 1),
                             [&](const torch::Tensor& t) { return net(t); });
  torch::NoGradGuard no_grad;
  net(x);
  for (auto* fq : quant::fake_quantizers(net)) fq->disable_observer();
  return plan;
}

}  // namespace

TEST_CASE("A float ONNX export computes what razor computes, in onnxruntime and OpenCV DNN", "[export][onnx]") {
  torch::manual_seed(0);
  TempDir dir;
  AllOps net;
  net.eval();
  const auto x = torch::randn({16, 2, 8, 8});
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = net(x);
  }
  const std::string file = dir / "float.onnx";
  const auto summary = deploy::write_onnx(trace(net, x), {deploy::OnnxForm::Float, nullptr, {1, 2, 8, 8}}, file);
  CHECK(summary.opset == 13);
  CHECK(summary.bytes == static_cast<int64_t>(fs::file_size(file)));

  const onnx::ModelProto model = read_model(file);
  std::map<std::string, int> ops;
  for (const auto& n : model.graph().node()) ++ops[n.op_type()];
  CHECK(ops["Conv"] == 3);
  CHECK(ops["BatchNormalization"] == 2);
  CHECK(ops["Gemm"] == 1);
  CHECK(ops["Concat"] == 1);

  const Json report = check_in_onnxruntime(file, dir / "check", x, y, {}, 0.0);
  for (const char* level : {"disabled", "all"}) {
    INFO(level);
    CHECK(report.at(level).at("relative_error").get<double>() < 1e-5);
    CHECK(report.at(level).at("argmax_agreement").get<double>() == 1.0);
  }
  CHECK(opencv_relative_error(file, x, y) < 1e-5);
}

TEST_CASE("A QDQ export of a quantised model computes its fake-quantised outputs in onnxruntime", "[export][onnx][quant]") {
  torch::manual_seed(1);
  TempDir dir;
  AllOps net;
  net.eval();
  const auto x = torch::randn({64, 2, 8, 8});
  auto plan = quantise(net, x);
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = net(x);
  }
  const std::string file = dir / "qdq.onnx";
  const auto summary = deploy::write_onnx(plan->flow, {deploy::OnnxForm::QDQ, plan.get(), {1, 2, 8, 8}}, file);
  CHECK(summary.weight_quantizers == 4);
  CHECK(summary.folded_bn == 2);
  CHECK(summary.activation_quantizers >= 8);

  // The int8 weights are the integers razor's fake quantiser rounds the folded weight to.
  const onnx::ModelProto model = read_model(file);
  auto& fq = *plan->weight_fake_quants.at(plan->flow.find("conv1"));
  const auto factor = net.bn1->weight / torch::sqrt(net.bn1->running_var + net.bn1->eps());
  const auto folded = net.conv1->weight * factor.view({4, 1, 1, 1});
  const auto qp = fq.calculate_qparams();
  const auto fake = torch::fake_quantize_per_channel_affine(folded, qp.scale.to(torch::kFloat), qp.zero_point.to(torch::kInt),
                                                            0, fq.quant_min(), fq.quant_max());
  const auto ints = torch::round(fake / qp.scale.view({4, 1, 1, 1})).to(torch::kInt8);
  const auto& stored = initializer(model, "conv1.weight_quantized");
  CHECK(stored.data_type() == onnx::TensorProto::INT8);
  CHECK(torch::equal(values(stored, torch::kInt8), ints));
  // The bias is the BN's shift folded in: (0 - mean) * gamma / sigma + beta.
  const auto bias = values(initializer(model, "conv1.bias"), torch::kFloat);
  CHECK(torch::allclose(bias, -net.bn1->running_mean * factor + net.bn1->bias, 1e-6, 1e-6));

  const double step = onnx_output_step(*plan);
  CHECK(step == Approx(plan->output_quantizer(plan->flow.output)->calculate_qparams().scale.item<double>()));
  const Json report = check_in_onnxruntime(file, dir / "check", x, y, {}, step);
  INFO(report.dump());
  CHECK(report.at("disabled").at("within_one_step").get<double>() >= 0.999);
  CHECK(report.at("disabled").at("max_steps").get<double>() <= 2.0);
  CHECK(report.at("all").at("argmax_agreement").get<double>() >= 0.9);
}

TEST_CASE("A FakeQuantize export carries each quantiser's levels and closed-form range", "[export][onnx][quant]") {
  torch::manual_seed(2);
  TempDir dir;
  AllOps net;
  net.eval();
  const auto x = torch::randn({32, 2, 8, 8});
  auto plan = quantise(net, x);
  const std::string file = dir / "openvino.onnx";
  const auto summary = deploy::write_onnx(plan->flow, {deploy::OnnxForm::FakeQuantize, plan.get(), {1, 2, 8, 8}}, file);
  CHECK(summary.opset == 11);
  const onnx::ModelProto model = read_model(file);
  int fake_quantize = 0;
  for (const auto& n : model.graph().node()) {
    if (n.op_type() != "FakeQuantize") continue;
    ++fake_quantize;
    CHECK(n.domain() == "org.openvinotoolkit");
    REQUIRE(n.attribute_size() == 1);
    CHECK(n.attribute(0).name() == "levels");
  }
  CHECK(fake_quantize == summary.weight_quantizers + summary.activation_quantizers);

  // The model input's quantiser: [(qmin - zp) * s, (qmax - zp) * s], levels qmax - qmin + 1.
  auto& in_q = *plan->input_quantizer(plan->flow.find("conv1"), 0);
  const auto qp = in_q.calculate_qparams();
  const double s = qp.scale.item<double>();
  const int64_t zp = qp.zero_point.item<int64_t>();
  const onnx::NodeProto* input_fq = nullptr;
  for (const auto& n : model.graph().node()) {
    if (n.op_type() == "FakeQuantize" && n.input(0) == "input") input_fq = &n;
  }
  REQUIRE(input_fq);
  CHECK(input_fq->attribute(0).i() == in_q.quant_max() - in_q.quant_min() + 1);
  CHECK(values(initializer(model, input_fq->input(1)), torch::kFloat).item<double>() == Approx((in_q.quant_min() - zp) * s));
  CHECK(values(initializer(model, input_fq->input(2)), torch::kFloat).item<double>() == Approx((in_q.quant_max() - zp) * s));
  // Per-channel weight ranges are shaped [C, 1, 1, 1], as OpenVINO reads them.
  bool weight_ranges = false;
  for (const auto& n : model.graph().node()) {
    if (n.op_type() == "FakeQuantize" && n.input(0) == "conv1.weight") {
      const auto lo = values(initializer(model, n.input(1)), torch::kFloat);
      CHECK(lo.sizes() == torch::IntArrayRef({4, 1, 1, 1}));
      weight_ranges = true;
    }
  }
  CHECK(weight_ranges);
}

namespace {

struct Swish : nn::Module {
  Swish() : nn::Module("Swish") {}
  torch::Tensor forward(const torch::Tensor& x) override { return x * torch::sigmoid(x); }
};

struct WithUnknownOp : nn::Module {
  WithUnknownOp() : nn::Module("WithUnknownOp") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(1, 2, 3)));
    act = register_module("act", std::make_shared<Swish>());
    nn::assign_paths(*this);
  }
  torch::Tensor forward(const torch::Tensor& x) override { return (*act)((*conv)(x)); }
  std::shared_ptr<nn::Module> conv, act;
};

struct WithCodeBetween : nn::Module {
  WithCodeBetween() : nn::Module("WithCodeBetween") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(1, 2, 3)));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    nn::assign_paths(*this);
  }
  torch::Tensor forward(const torch::Tensor& x) override { return (*relu)((*conv)(x) * 2.0); }
  std::shared_ptr<nn::Module> conv, relu;
};

}  // namespace

TEST_CASE("The ONNX writer names the module it cannot express and writes nothing", "[export][onnx]") {
  TempDir dir;
  const auto x = torch::randn({1, 1, 6, 6});
  const std::string file = dir / "bad.onnx";
  {
    WithUnknownOp net;
    CHECK_THROWS_WITH(deploy::write_onnx(trace(net, x), {deploy::OnnxForm::Float, nullptr, {1, 1, 6, 6}}, file),
                      Catch::Contains("module \"act\" is a Swish, which the ONNX writer does not know"));
  }
  {
    WithCodeBetween net;
    CHECK_THROWS_WITH(deploy::write_onnx(trace(net, x), {deploy::OnnxForm::Float, nullptr, {1, 1, 6, 6}}, file),
                      Catch::Contains("module \"relu\" reads a value computed by code between modules"));
  }
  {
    AllOps net;
    net.eval();
    const auto y = torch::randn({4, 2, 8, 8});
    CHECK_THROWS_WITH(deploy::write_onnx(trace(net, y), {deploy::OnnxForm::QDQ, nullptr, {1, 2, 8, 8}}, file),
                      Catch::Contains("needs a quantised model"));
    // 16-bit activations have no QuantizeLinear in opset 13.
    auto plan = quantise(net, y, {{"bit", 16}});
    CHECK_THROWS_WITH(deploy::write_onnx(plan->flow, {deploy::OnnxForm::QDQ, plan.get(), {1, 2, 8, 8}}, file),
                      Catch::Contains("does not fit uint8"));
  }
  CHECK(deploy::parse_onnx_form("OpenVINO") == deploy::OnnxForm::FakeQuantize);
  CHECK_THROWS_WITH(deploy::parse_onnx_form("tflite"), Catch::Contains("known: float, qdq, fakequantize"));
  CHECK_FALSE(fs::exists(file));
}

namespace {

/// conv -> BN, the conv's channel 1 masked (pruned): the one weight-step contract folds the BN
/// first and masks after, so the masked channel gives 0 in razor's forward and in the file.
struct MaskedConvBn : nn::Module {
  MaskedConvBn() : nn::Module("MaskedConvBn") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 3, 3).with_padding(1)));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(3));
    flatten = register_module("flatten", std::make_shared<nn::Flatten>(1));  // check.mjs reads N x K outputs
    nn::assign_paths(*this);
    torch::NoGradGuard no_grad;
    bn->running_mean.copy_(torch::tensor({0.3, -0.4, 0.2}));
    bn->running_var.copy_(torch::tensor({0.8, 1.5, 1.2}));
    bn->weight.copy_(torch::tensor({1.2, 0.9, 0.7}));
    bn->bias.copy_(torch::tensor({0.1, 0.5, -0.2}));  // beta - mu * gamma / sigma of channel 1 is not 0
    conv->set_out_channel_mask(torch::tensor({1.0, 0.0, 1.0}));
  }
  torch::Tensor forward(const torch::Tensor& x) override { return (*flatten)((*bn)((*conv)(x))); }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Module> flatten;
};

}  // namespace

TEST_CASE("A masked channel gives 0 in razor and in the QDQ file: BN folded, then the mask", "[export][onnx][quant]") {
  torch::manual_seed(4);
  TempDir dir;
  MaskedConvBn net;
  net.eval();
  const auto x = torch::randn({16, 2, 6, 6});
  quant::register_quant();
  auto plan = quant::prepare(net, native_options(), x.narrow(0, 0, 1), [&](const torch::Tensor& t) { return net(t); });
  REQUIRE(plan->folded_bn.size() == 1);
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    net(x);
    for (auto* fq : quant::fake_quantizers(net)) fq->disable_observer();
    y = net(x);
  }
  const torch::Tensor channels = y.view({16, 3, 6, 6});
  CHECK(channels.select(1, 1).abs().max().item<float>() == 0.0f);
  CHECK(channels.select(1, 0).abs().max().item<float>() > 0.0f);

  // The file's folded bias of the masked channel is 0 as well (mask after fold).
  const auto [weight, bias] = net.conv->deployed_weight(net.bn.get());
  CHECK(bias[1].item<float>() == 0.0f);
  CHECK(weight[1].abs().max().item<float>() == 0.0f);
  const std::string file = dir / "masked.onnx";
  deploy::write_onnx(plan->flow, {deploy::OnnxForm::QDQ, plan.get(), {1, 2, 6, 6}}, file);
  CHECK(values(initializer(read_model(file), "conv.bias"), torch::kFloat)[1].item<float>() == 0.0f);
  const Json report = check_in_onnxruntime(file, dir / "check", x, y, {}, onnx_output_step(*plan));
  INFO(report.dump());
  CHECK(report.at("disabled").at("max_steps").get<double>() <= 1.0);
}

namespace {

/// ShuffleNetV2's blocks, whose split and channel shuffle are ops of the graph: a stride-2
/// block, then a stride-1 one (half the channels pass through).
struct ShuffleNet : nn::Module {
  ShuffleNet() : nn::Module("ShuffleNet") {
    down = register_module("down", std::make_shared<ShuffleBlock>(4, 8, 2, 3));
    same = register_module("same", std::make_shared<ShuffleXception>(8, 8, 1));
    flatten = register_module("flatten", std::make_shared<nn::Flatten>(1));
    nn::assign_paths(*this);
  }
  torch::Tensor forward(const torch::Tensor& x) override { return (*flatten)((*same)((*down)(x))); }
  std::shared_ptr<nn::Module> down, same, flatten;
};

}  // namespace

TEST_CASE("ShuffleNetV2 blocks export whole: chunk and channel shuffle are ops", "[export][onnx]") {
  torch::manual_seed(5);
  TempDir dir;
  ShuffleNet net;
  net.eval();
  const auto x = torch::randn({8, 4, 8, 8});
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = net(x);
  }
  const nn::Dataflow flow = trace(net, x);
  for (const auto& n : flow.nodes) {
    for (int64_t input : n.inputs) CHECK(input != nn::kUnknownProducer);
  }
  CHECK(flow.find("same.first_half") >= 0);
  CHECK(flow.find("same.shuffle") >= 0);
  // The traced path (hooks on every op) computes what the fused concat + shuffle computes.
  {
    torch::NoGradGuard no_grad;
    auto handle = dynamic_cast<nn::Module&>(*net.same->named_children()["shuffle"]).add_forward_hook(
        [](nn::Module&, const nn::Inputs&, torch::Tensor&) {});
    CHECK(torch::equal(net(x), y));
    handle.remove();
  }
  const std::string file = dir / "shufflenet.onnx";
  deploy::write_onnx(flow, {deploy::OnnxForm::Float, nullptr, {1, 4, 8, 8}}, file);
  const Json report = check_in_onnxruntime(file, dir / "check", x, y, {}, 0.0);
  for (const char* level : {"disabled", "all"}) {
    INFO(level);
    CHECK(report.at(level).at("relative_error").get<double>() < 1e-5);
  }
}
