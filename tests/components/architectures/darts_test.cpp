#include <catch2/catch.hpp>

#include <set>

#include <torch/torch.h>

#include "components/architectures/darts_backbone.h"
#include "components/mutables/choice_route.h"
#include "components/mutables/register_mutables.h"
#include "components/mutators/nas_mutator.h"
#include "components/nn/module.h"
#include "tests/components/architectures/build.h"

using namespace razor;

namespace {

Json darts_backbone_table() {
  Json candidates = {{"zero", {{"type", "DartsZero"}}},
                     {"skip_connect", {{"type", "DartsSkipConnect"}}},
                     {"max_pool_3x3", {{"type", "DartsPoolBN"}, {"pool_type", "max"}}},
                     {"avg_pool_3x3", {{"type", "DartsPoolBN"}, {"pool_type", "avg"}}},
                     {"sep_conv_3x3", {{"type", "DartsSepConv"}, {"kernel_size", 3}}},
                     {"sep_conv_5x5", {{"type", "DartsSepConv"}, {"kernel_size", 5}}},
                     {"dil_conv_3x3", {{"type", "DartsDilConv"}, {"kernel_size", 3}}},
                     {"dil_conv_5x5", {{"type", "DartsDilConv"}, {"kernel_size", 5}}}};
  return {{"type", "DartsBackbone"},
          {"in_channels", 1},
          {"base_channels", 4},
          {"num_layers", 3},
          {"num_nodes", 3},
          {"stem_multiplier", 3},
          {"norm_cfg", {{"type", "BN"}, {"affine", false}}},
          {"route_cfg", {{"type", "DiffChoiceRoute"}, {"with_arch_param", true}}},
          {"mutable_cfg", {{"type", "DiffMutableOP"}, {"candidates", candidates}}}};
}

std::shared_ptr<torch::nn::Module> build_darts(const Json& table) {
  register_mutables();
  return test::build_model(table, "model.backbone");
}

}  // namespace

TEST_CASE("DARTS ops keep MMRazor's shapes and names", "[darts]") {
  register_mutables();
  const torch::Tensor x = torch::randn({2, 4, 8, 8});
  for (int64_t stride : {1, 2}) {
    const int64_t side = 8 / stride;
    for (const Json& op : {Json{{"type", "DartsZero"}}, Json{{"type", "DartsSkipConnect"}},
                           Json{{"type", "DartsPoolBN"}, {"pool_type", "avg"}},
                           Json{{"type", "DartsSepConv"}, {"kernel_size", 5}},
                           Json{{"type", "DartsDilConv"}, {"kernel_size", 3}}}) {
      Json table = op;
      table["in_channels"] = 4;
      table["out_channels"] = 4;
      table["stride"] = stride;
      INFO(table.dump());
      auto module = std::dynamic_pointer_cast<nn::Module>(test::build_model(table, "op"));
      REQUIRE(module);
      CHECK((*module)(x).sizes() == torch::IntArrayRef({2, 4, side, side}));
    }
  }
  // Zero is zeros; the stride-1 skip is the identity and has no weights.
  Json zero = {{"type", "DartsZero"}, {"in_channels", 4}, {"out_channels", 4}, {"stride", 2}};
  auto zero_op = std::dynamic_pointer_cast<nn::Module>(test::build_model(zero, "op"));
  CHECK((*zero_op)(x).abs().sum().item<double>() == 0.0);
  Json skip = {{"type", "DartsSkipConnect"}, {"in_channels", 4}, {"out_channels", 4}};
  auto skip_op = std::dynamic_pointer_cast<nn::Module>(test::build_model(skip, "op"));
  CHECK(torch::equal((*skip_op)(x), x));
  CHECK(skip_op->parameters().empty());
  // State dict names as in MMRazor.
  Json sep = {{"type", "DartsSepConv"}, {"kernel_size", 3},
              {"in_channels", 4},     {"out_channels", 4},
              {"norm_cfg", {{"type", "BN"}, {"affine", false}}}};
  std::set<std::string> names;
  for (const auto& item : test::build_model(sep, "op")->named_parameters()) {
    names.insert(item.key());
  }
  CHECK(names == std::set<std::string>{"conv1.1.weight", "conv1.2.weight", "conv2.1.weight",
                                       "conv2.2.weight"});
  Json reduce = {{"type", "DartsSkipConnect"}, {"in_channels", 4}, {"out_channels", 4},
                 {"stride", 2}};
  names.clear();
  for (const auto& item : test::build_model(reduce, "op")->named_parameters()) {
    names.insert(item.key());
  }
  CHECK(names == std::set<std::string>{"conv1.weight", "conv2.weight", "bn.weight", "bn.bias"});
  // A typo is an error naming the key.
  Json typo = {
      {"type", "DartsSepConv"}, {"kernel_sise", 3}, {"in_channels", 4}, {"out_channels", 4}};
  CHECK_THROWS_WITH(test::build_model(typo, "op"), Catch::Contains("kernel_size"));
}

TEST_CASE("DartsBackbone: MMRazor's cells, aliases and shared α", "[darts]") {
  auto module = build_darts(darts_backbone_table());
  auto* backbone = dynamic_cast<DartsBackbone*>(module.get());
  REQUIRE(backbone);
  nn::assign_paths(*backbone);
  // Reductions at cells 1 and 2 of 3: channels 4 -> 8 -> 16, 3 nodes concatenated.
  CHECK(backbone->out_channels() == 48);
  CHECK_FALSE(backbone->cell(0).reduction());
  CHECK(backbone->cell(1).reduction());
  CHECK(backbone->cell(2).reduction());
  const torch::Tensor out = (*backbone)(torch::randn({2, 1, 16, 16}));
  CHECK(out.sizes() == torch::IntArrayRef({2, 48, 4, 4}));

  std::set<std::string> names;
  for (const auto& item : backbone->named_parameters()) names.insert(item.key());
  CHECK(names.count("stem.0.weight") == 1);
  CHECK(names.count("stem.1.weight") == 0);  // affine = false
  CHECK(names.count("cells.0.nodes.1.route._edges.normal_n3_p2._candidates.sep_conv_3x3."
                    "conv1.1.weight") == 1);
  CHECK(names.count("cells.2.preproc0.conv1.weight") == 1);  // FactorizedReduce after a reduction

  NasMutator mutator;
  mutator.prepare(*backbone);
  // Normal: 2 + 3 + 4 edges and 3 routes, the same for reduce; shared by the two reduce cells.
  CHECK(mutator.search_groups().size() == 2 * (9 + 3));
  std::set<std::string> subnet_names;
  for (const auto& group : mutator.search_groups()) subnet_names.insert(group.subnet_name());
  for (const char* name : {"normal_n2", "normal_n4_p3", "reduce_n3", "reduce_n4_p0"}) {
    INFO(name);
    CHECK(subnet_names.count(name) == 1);
  }
  size_t shared = 0;
  for (const auto& group : mutator.search_groups()) {
    if (group.subnet_name() == "reduce_n2_p0") shared = group.members.size();
  }
  CHECK(shared == 2);
  CHECK(mutator.arch_params().size() == mutator.search_groups().size());

  // The derived subnet: argmax op per edge, the top-2 edges per node.
  torch::NoGradGuard no_grad;
  for (const auto& group : mutator.search_groups()) {
    if (group.subnet_name() == "normal_n4") {
      group.arch_param.copy_(torch::tensor({0.0, 3.0, 1.0, 2.0}));
    }
    if (group.subnet_name() == "normal_n2_p1") group.arch_param[4] = 5.0;
  }
  mutator.set_choices(mutator.sample_choices());
  const Json subnet = mutator.current_subnet();
  CHECK(subnet["normal_n4"]["chosen"] == Json({"normal_n4_p1", "normal_n4_p3"}));
  CHECK(subnet["normal_n2_p1"]["chosen"] == "sep_conv_3x3");
}
