// Forward pre/post hooks, their removal, and dotted module paths.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/nn/nn.h"
#include "engine/error.h"

using namespace razor;

namespace {

/// conv -> relu -> (residual) add, with a nested Sequential.
class Toy : public nn::Module {
 public:
  Toy() : nn::Module("Toy") {
    conv = register_module(
        "conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 2, 3).with_padding(1)));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    add = register_module("add", std::make_shared<nn::Add>());
    stage = register_module("stage", std::make_shared<nn::Sequential>());
    stage->push_back(std::make_shared<nn::Identity>());
    stage->push_back(std::make_shared<nn::ReLU>());
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::ReLU> relu;
  std::shared_ptr<nn::Add> add;
  std::shared_ptr<nn::Sequential> stage;

 protected:
  torch::Tensor forward(const torch::Tensor& x) override {
    return (*stage)((*add)({(*relu)((*conv)(x)), x}));
  }
};

}  // namespace

TEST_CASE("A pre hook can replace the input and a post hook the output", "[nn]") {
  nn::ReLU relu;
  auto x = torch::randn({4, 5});
  auto pre =
      relu.add_forward_pre_hook([](nn::Module&, nn::Inputs& inputs) { inputs[0] = -inputs[0]; });
  CHECK(torch::equal(relu(x), torch::relu(-x)));
  torch::Tensor seen_input, seen_output;
  auto post =
      relu.add_forward_hook([&](nn::Module&, const nn::Inputs& inputs, torch::Tensor& output) {
        seen_input = inputs[0];
        seen_output = output;
        output = output + 1;
      });
  CHECK(relu.num_hooks() == 2);
  CHECK(torch::equal(relu(x), torch::relu(-x) + 1));
  CHECK(torch::equal(seen_input, -x));  // the post hook sees the replaced input
  CHECK(torch::equal(seen_output, torch::relu(-x)));
  pre.remove();
  CHECK(torch::equal(relu(x), torch::relu(x) + 1));
  post.remove();
  post.remove();  // twice is fine
  CHECK(relu.num_hooks() == 0);
  CHECK(torch::equal(relu(x), torch::relu(x)));
  // Hooks that keep no tensors are counted apart, and their removal too.
  int calls = 0;
  auto blind_pre = relu.add_forward_pre_hook([&](nn::Module&, nn::Inputs&) { ++calls; }, /*keeps_tensors=*/false);
  auto blind_post = relu.add_forward_hook([&](nn::Module&, const nn::Inputs&, torch::Tensor&) { ++calls; }, false);
  auto keeping = relu.add_forward_hook([&](nn::Module&, const nn::Inputs&, torch::Tensor& out) { seen_output = out; });
  CHECK(relu.num_hooks() == 3);
  CHECK(relu.num_tensor_hooks() == 1);
  relu(x);
  CHECK(calls == 2);
  keeping.remove();
  CHECK(relu.num_tensor_hooks() == 0);
  blind_pre.remove();
  blind_post.remove();
  blind_post.remove();
  CHECK(relu.num_hooks() == 0);
  CHECK(relu.num_tensor_hooks() == 0);
}

TEST_CASE("Hooks of multi-input ops see the list, a removed module's handle is harmless", "[nn]") {
  auto a = torch::randn({3}), b = torch::randn({3});
  nn::HookHandle handle;
  {
    auto add = std::make_shared<nn::Add>();
    size_t seen = 0;
    add->add_forward_pre_hook([&](nn::Module&, nn::Inputs& inputs) {
      seen = inputs.size();
      inputs[1] = inputs[1] * 2;
    });
    handle =
        add->add_forward_hook([](nn::Module&, const nn::Inputs& inputs, torch::Tensor& output) {
          REQUIRE(inputs.size() == 2);
          output = output - inputs[0];
        });
    CHECK(torch::allclose((*add)({a, b}), b * 2));
    CHECK(seen == 2);
  }
  handle.remove();  // the module is gone
}

TEST_CASE("A hook may remove itself while running", "[nn]") {
  nn::ReLU relu;
  int calls = 0;
  nn::HookHandle handle;
  handle = relu.add_forward_hook([&](nn::Module&, const nn::Inputs&, torch::Tensor&) {
    ++calls;
    handle.remove();
  });
  relu(torch::ones({1}));
  relu(torch::ones({1}));
  CHECK(calls == 1);
}

TEST_CASE("assign_paths names modules by their dotted path and hooks fire inside blocks", "[nn]") {
  auto toy = std::make_shared<Toy>();
  nn::assign_paths(*toy);
  CHECK(toy->path().empty());
  CHECK(toy->conv->path() == "conv");
  CHECK(nn::find_module(*toy, "stage.1").path() == "stage.1");
  CHECK(&nn::find_module(*toy, "add") == toy->add.get());
  CHECK(nn::module_paths(*toy) ==
        std::vector<std::string>{"conv", "relu", "add", "stage", "stage.0", "stage.1"});

  std::vector<std::string> order;
  for (const auto& path : nn::module_paths(*toy)) {
    nn::find_module(*toy, path)
        .add_forward_hook([&order](nn::Module& m, const nn::Inputs&, torch::Tensor&) {
          order.push_back(m.path());
        });
  }
  (*toy)(torch::randn({1, 2, 4, 4}));
  CHECK(order == std::vector<std::string>{"conv", "relu", "add", "stage.0", "stage.1", "stage"});
}

TEST_CASE("find_module names the nearest modules for a typo", "[nn]") {
  Toy toy;
  try {
    nn::find_module(toy, "stage.2");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains("stage.2") && Catch::Contains("nearest") &&
                             Catch::Contains("stage.1") && Catch::Contains("stage.0"));
  }
  CHECK_THROWS_WITH(nn::find_module(toy, "rleu"), Catch::Contains("relu"));
}
