// The traced op graph read directly: which node produced each input, who consumes each
// output, shapes, a module called twice, the graph's input and output, code between modules;
// and the op descriptions the passes read from it (quantisation traits, counting rules).
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/nn/dataflow.h"
#include "components/nn/nn.h"
#include "components/nn/op_description.h"

using namespace razor;

namespace {

/// x -> conv -> bn -> relu -> (+ x) -> relu (the same ReLU again) -> pool ->
/// concat(pool, pool * 2 [code between modules]) -> flatten -> fc.
struct Graph : nn::Module {
  Graph() : nn::Module("Graph") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 3, 3).with_padding(1).with_bias(false)));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(3));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    add = register_module("add", std::make_shared<nn::Add>());
    pool = register_module("pool", std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions(2)));
    cat = register_module("cat", std::make_shared<nn::Concat>(1));
    flatten = register_module("flatten", std::make_shared<nn::Flatten>(1));
    fc = register_module("fc", std::make_shared<nn::Linear>(6 * 4 * 4, 5));
    nn::assign_paths(*this);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    auto r = (*relu)((*add)({(*relu)((*bn)((*conv)(x))), x}));
    auto p = (*pool)(r);
    return (*fc)((*flatten)((*cat)({p, p * 2.0})));
  }
  std::shared_ptr<nn::Module> conv, bn, relu, add, pool, cat, flatten, fc;
};

}  // namespace

TEST_CASE("The traced graph has each call's producers, consumers and shapes", "[nn][dataflow]") {
  Graph net;
  net.eval();
  const auto x = torch::randn({2, 3, 8, 8});
  const nn::Dataflow g = nn::trace_dataflow(net, x, [&](const torch::Tensor& t) { return net(t); });

  // One node per call of a leaf op, in call order; the ReLU twice.
  std::vector<std::string> order;
  for (const auto& n : g.nodes) order.push_back(n.path + "#" + std::to_string(n.call));
  CHECK(order == std::vector<std::string>{"conv#0", "bn#0", "relu#0", "add#0", "relu#1", "pool#0", "cat#0",
                                          "flatten#0", "fc#0"});
  const int64_t conv = g.find("conv"), bn = g.find("bn"), relu0 = g.find("relu"), add = g.find("add"),
                relu1 = g.find("relu", 1), pool = g.find("pool"), cat = g.find("cat"), flatten = g.find("flatten"),
                fc = g.find("fc");
  CHECK(g.find("relu", 2) == -1);
  CHECK(g.find("nothing") == -1);
  CHECK(g.nodes[static_cast<size_t>(relu0)].module == g.nodes[static_cast<size_t>(relu1)].module);
  CHECK(g.nodes[static_cast<size_t>(conv)].type == "Conv2d");

  // Producers: the graph input, the residual, and the concat's second input made by code.
  CHECK(g.nodes[static_cast<size_t>(conv)].inputs == std::vector<int64_t>{nn::kGraphInput});
  CHECK(g.nodes[static_cast<size_t>(add)].inputs == std::vector<int64_t>{relu0, nn::kGraphInput});
  CHECK(g.nodes[static_cast<size_t>(relu1)].inputs == std::vector<int64_t>{add});
  CHECK(g.nodes[static_cast<size_t>(cat)].inputs == std::vector<int64_t>{pool, nn::kUnknownProducer});
  CHECK(g.input_consumers == std::vector<int64_t>{conv, add});

  // Consumers, and the single-consumer test the quantiser's chains use.
  CHECK(g.nodes[static_cast<size_t>(pool)].consumers == std::vector<int64_t>{cat});
  CHECK(g.only_consumer(conv) == bn);
  CHECK(g.only_consumer(bn) == relu0);
  CHECK(g.only_consumer(fc) == -1);  // the output

  // Shapes as traced, and the output.
  CHECK(g.nodes[static_cast<size_t>(pool)].output_shape == std::vector<int64_t>{2, 3, 4, 4});
  CHECK(g.nodes[static_cast<size_t>(cat)].output_shape == std::vector<int64_t>{2, 6, 4, 4});
  CHECK(g.nodes[static_cast<size_t>(flatten)].output_shape == std::vector<int64_t>{2, 96});
  CHECK(g.output == fc);
  CHECK(g.nodes[static_cast<size_t>(fc)].is_output);
  CHECK_FALSE(g.nodes[static_cast<size_t>(flatten)].is_output);

  // The hooks are gone afterwards.
  for (const auto& n : g.nodes) CHECK(n.module->num_hooks() == 0);
}

TEST_CASE("A model output made by code between modules is no node's", "[nn][dataflow]") {
  nn::ReLU relu;
  const nn::Dataflow g =
      nn::trace_dataflow(relu, torch::randn({1, 2}), [&](const torch::Tensor& t) { return relu(t) + 1.0; });
  REQUIRE(g.nodes.size() == 1);
  CHECK(g.output == nn::kUnknownProducer);
  CHECK_FALSE(g.nodes[0].is_output);
}

TEST_CASE("Op descriptions: quantisation traits as the placement rules read them", "[nn][dataflow][quant]") {
  const auto traits = [](const nn::Module& m) {
    REQUIRE(m.description());
    return m.description()->quant;
  };
  CHECK(traits(nn::Conv2d(nn::Conv2dOptions(1, 1, 1))).role == nn::QuantRole::kWeighted);
  CHECK(traits(nn::Linear(2, 2)).role == nn::QuantRole::kWeighted);
  const nn::QuantTraits bn = traits(nn::BatchNorm2d(2));
  CHECK(bn.role == nn::QuantRole::kFloat);
  CHECK(bn.chain == nn::ChainRole::kFoldedNorm);
  CHECK(bn.own_output_on == std::vector<std::string>{"native"});
  CHECK(traits(nn::ReLU()).chain == nn::ChainRole::kActivation);
  CHECK(traits(nn::ReLU()).keeps_grid);
  CHECK(traits(nn::ReLU6()).chain == nn::ChainRole::kClampedActivation);
  CHECK_FALSE(traits(nn::ReLU6()).keeps_grid);  // 6 need not lie on the grid
  CHECK(traits(nn::Add()).role == nn::QuantRole::kQuantised);
  CHECK(traits(nn::Add()).fuses_activation);
  CHECK_FALSE(traits(nn::Mul()).fuses_activation);
  CHECK(traits(nn::Concat()).role == nn::QuantRole::kConcat);
  CHECK(traits(nn::AdaptiveAvgPool2d(1)).own_output_on == std::vector<std::string>{"onnxruntime"});
  CHECK(traits(nn::MaxPool2d(nn::Pool2dOptions(2))).keeps_grid);
  CHECK(traits(nn::Flatten()).keeps_grid);
  CHECK(traits(nn::Identity()).role == nn::QuantRole::kSharesInput);
  CHECK(traits(nn::Hardswish()).role == nn::QuantRole::kQuantised);
  // Blocks have no description.
  Graph net;
  CHECK(net.description() == nullptr);
}

TEST_CASE("Op descriptions: counting rules in closed form", "[nn][dataflow][estimator]") {
  torch::NoGradGuard no_grad;
  const auto cost = [](nn::Module& m, const torch::Tensor& x) {
    const torch::Tensor y = m(x);
    REQUIRE(m.description());
    REQUIRE(m.description()->cost);
    return m.description()->cost(m, {x}, y);
  };
  // A 3x3 conv of 4 -> 6 channels in 2 groups, stride 2, with bias, on 2 x 4 x 9 x 9: 5 x 5
  // outputs; per position 9 * 4 * 6 / 2 multiply-adds, plus the bias per output element.
  nn::Conv2d conv(nn::Conv2dOptions(4, 6, 3).with_stride(2).with_padding(1).with_groups(2));
  const nn::OpCost c = cost(conv, torch::randn({2, 4, 9, 9}));
  CHECK(c.flops == 9.0 * 4 * 6 / 2 * 2 * 25 + 6.0 * 2 * 25);
  CHECK(c.params == 9 * 4 * 6 / 2 + 6);
  nn::Linear fc(10, 3);
  const nn::OpCost l = cost(fc, torch::randn({4, 10}));
  CHECK(l.flops == 4.0 * 10 * 3);
  CHECK(l.params == 33);
  nn::BatchNorm2d bn(3);
  bn.eval();
  CHECK(cost(bn, torch::randn({2, 3, 4, 4})).flops == 2.0 * 96);
  nn::ReLU relu;
  CHECK(cost(relu, torch::randn({2, 3, 4, 4})).flops == 96.0);
  nn::MaxPool2d pool(nn::Pool2dOptions(2));
  CHECK(cost(pool, torch::randn({2, 3, 4, 4})).flops == 96.0);  // per input element
  // Ops MMRazor has no counter for count nothing.
  CHECK_FALSE(nn::Add().description()->cost);
  CHECK_FALSE(nn::Flatten().description()->cost);
}
