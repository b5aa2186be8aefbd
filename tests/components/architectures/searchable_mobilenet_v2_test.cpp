// The MobileNetV2 (ProxylessNAS) search space: MBBlock against a plain LibTorch computation,
// the identity candidate only where a block keeps its stride and width, and the shipped
// Fashion-MNIST supernet's subnets.
#include "components/architectures/searchable_mobilenet_v2.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "apps/register_all.h"
#include "components/mutators/nas_mutator.h"
#include "components/nn/batch_norm.h"
#include "engine/config.h"
#include "engine/model.h"

using namespace razor;

namespace {

torch::Tensor plain(nn::ConvModule& m, const torch::Tensor& x, bool relu6) {
  const auto& o = m.options();
  torch::Tensor y = torch::conv2d(x, m.conv().weight, {}, o.stride, o.padding, o.dilation, o.groups);
  nn::BatchNorm2d& bn = *m.bn();
  y = torch::batch_norm(y, bn.weight, bn.bias, bn.running_mean, bn.running_var, false, 0.1, bn.eps(), false);
  return relu6 ? torch::clamp(y, 0, 6) : y;
}

nn::ConvModule& child(nn::Module& m, const std::string& name) {
  return *std::dynamic_pointer_cast<nn::ConvModule>(m.named_children()[name]);
}

}  // namespace

TEST_CASE("MBBlock computes expand, k x k depthwise, linear and the residual", "[mobilenet_space]") {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({2, 8, 7, 7});
  for (int64_t k : {3, 5, 7}) {
    MBBlock same(8, 8, 1, k, 6.0), down(8, 16, 2, k, 3.0);
    same.eval(), down.eval();
    CHECK(same.with_residual());
    CHECK_FALSE(down.with_residual());
    const torch::Tensor expected =
        x + plain(child(same, "linear_conv"),
                  plain(child(same, "depthwise_conv"), plain(child(same, "expand_conv"), x, true), true), false);
    CHECK(torch::allclose(same(x), expected, 1e-5, 1e-5));
    CHECK(down(x).sizes() == std::vector<int64_t>{2, 16, 4, 4});
    CHECK(child(same, "depthwise_conv").conv().weight.sizes() == std::vector<int64_t>{48, 1, k, k});
  }
}

TEST_CASE("SearchableMobileNetV2 offers identity only where stride and width are kept", "[mobilenet_space]") {
  register_all();
  auto config = std::make_shared<Config>(
      load_config(std::string(RAZOR_SOURCE_DIR) + "/configs/_base_/nas_backbones/spos_mobilenet_fmnist.toml"));
  Args args(config->tree.at("model").at("architecture"), "model.architecture", config);
  auto model = build_model_as<Model>(args, {}, "a model");
  NasMutator mutator;
  mutator.prepare(*model);
  REQUIRE(mutator.search_groups().size() == 9);
  CHECK(mutator.search_groups()[0].names[0] == "backbone.layer1.0");
  CHECK(mutator.search_groups()[0].front().choices() == std::vector<Choice>{"mb_k3e1"});
  auto has_identity = [&](size_t g) {
    const auto choices = mutator.search_groups()[g].front().choices();
    return std::find(choices.begin(), choices.end(), Choice("identity")) != choices.end();
  };
  CHECK_FALSE(has_identity(1));  // layer2.0: stride 2
  CHECK(has_identity(2));        // layer2.1
  CHECK_FALSE(has_identity(3));  // layer3.0
  CHECK(has_identity(4));
  CHECK(mutator.search_groups()[1].front().choices().size() == 6);
  CHECK(mutator.search_groups()[2].front().choices().size() == 7);
  // The largest subnet (by parameters) is all k7e6; every subnet runs.
  Json max = mutator.max_choices();
  CHECK(max["module_1"] == "mb_k7e6");
  model->eval();
  for (const auto& kind : {"max", "min", "random"}) {
    mutator.set_choices(mutator.sample_choices(kind));
    CHECK(model->forward_tensor(torch::randn({2, 1, 28, 28})).sizes() == std::vector<int64_t>{2, 10});
  }
  CHECK(mutator.min_choices()["module_2"] == "identity");
}
