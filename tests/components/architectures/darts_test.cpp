#include <catch2/catch.hpp>

#include <set>

#include <torch/torch.h>

#include "components/architectures/darts_backbone.h"
#include "components/architectures/darts_subnet_head.h"
#include "components/architectures/image_classifier.h"
#include "components/mutators/fix_subnet.h"
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

namespace {

/// darts_backbone_table() with affine BNs, the auxiliary head and out_indices.
Json darts_aux_table() {
  Json table = darts_backbone_table();
  table["norm_cfg"]["affine"] = true;
  table["auxliary"] = true;
  table["aux_channels"] = 8;
  table["aux_out_channels"] = 12;
  table["out_indices"] = {1, 2};
  return table;
}

/// A classifier over `backbone` with MMRazor's DartsSubnetClsHead (aux loss weight 0.4).
Json darts_subnet_classifier(const Json& backbone, int64_t in_channels, int64_t aux_in_channels) {
  return {{"type", "ImageClassifier"},
          {"backbone", backbone},
          {"neck", {{"type", "GlobalAveragePooling"}}},
          {"head",
           {{"type", "DartsSubnetClsHead"},
            {"num_classes", 5},
            {"in_channels", in_channels},
            {"aux_in_channels", aux_in_channels},
            {"loss", {{"type", "CrossEntropyLoss"}, {"loss_weight", 1.0}}},
            {"aux_loss", {{"type", "CrossEntropyLoss"}, {"loss_weight", 0.4}}},
            {"topk", {1, 2}},
            {"cal_acc", true}}}};
}

torch::Tensor named(torch::nn::Module& module, const std::string& name) {
  auto params = module.named_parameters();
  REQUIRE(params.contains(name));
  return params[name];
}

/// torch::batch_norm with batch statistics (training) and the module's affine parameters.
torch::Tensor train_bn(const torch::Tensor& x, torch::nn::Module& m, const std::string& prefix) {
  return torch::batch_norm(x, named(m, prefix + ".weight"), named(m, prefix + ".bias"), {}, {},
                           /*training=*/true, 0.1, 1e-5, false);
}

}  // namespace

TEST_CASE("DartsBackbone: the auxiliary head is MMRazor's AuxiliaryModule on cell 2/3, in training",
          "[darts]") {
  auto module = build_darts(darts_aux_table());
  auto* backbone = dynamic_cast<DartsBackbone*>(module.get());
  REQUIRE(backbone);
  nn::assign_paths(*backbone);
  // 3 cells: reductions at 1 and 2; the head reads cell 2 * 3 / 3 = 2 (48 channels, 7x7 on 28x28).
  CHECK(backbone->auxiliary_index() == 2);
  CHECK(backbone->aux_out_channels() == 12);
  REQUIRE(backbone->auxiliary_head() != nullptr);
  CHECK(named(*backbone, "auxliary_module.net.2.weight").sizes() ==
        torch::IntArrayRef({8, 48, 1, 1}));
  CHECK(named(*backbone, "auxliary_module.net.5.weight").sizes() ==
        torch::IntArrayRef({12, 8, 2, 2}));

  torch::Tensor cell1, cell2;
  backbone->cell(1).add_forward_hook(
      [&](nn::Module&, const nn::Inputs&, torch::Tensor& out) { cell1 = out; });
  backbone->cell(2).add_forward_hook(
      [&](nn::Module&, const nn::Inputs&, torch::Tensor& out) { cell2 = out; });
  {  // random affine parameters, so that the BNs' weights and biases matter
    torch::NoGradGuard no_grad;
    for (auto& p : backbone->parameters()) p.normal_(0.0, 0.5);
  }
  const torch::Tensor x = torch::randn({3, 1, 28, 28});
  backbone->train();
  CHECK(backbone->has_multiple_outputs());
  const BackboneOutputs out = backbone->forward_outputs(x);
  REQUIRE(out.outs.size() == 2);  // out_indices = [1, 2]
  CHECK(torch::equal(out.outs[0], cell1));
  CHECK(torch::equal(out.outs[1], cell2));
  CHECK(cell2.sizes() == torch::IntArrayRef({3, 48, 7, 7}));
  REQUIRE(out.aux.defined());
  CHECK(out.aux.sizes() == torch::IntArrayRef({3, 12, 1, 1}));

  // By hand: ReLU, AvgPool(5, stride 2, without padding), conv1x1, BN, ReLU, conv2x2, BN, ReLU.
  torch::Tensor h = torch::relu(cell2);
  h = torch::avg_pool2d(h, 5, 2, 0, /*ceil_mode=*/false, /*count_include_pad=*/false);
  CHECK(h.sizes() == torch::IntArrayRef({3, 48, 2, 2}));
  h = torch::conv2d(h, named(*backbone, "auxliary_module.net.2.weight"));
  h = torch::relu(train_bn(h, *backbone, "auxliary_module.net.3"));
  h = torch::conv2d(h, named(*backbone, "auxliary_module.net.5.weight"));
  h = torch::relu(train_bn(h, *backbone, "auxliary_module.net.6"));
  CHECK(torch::allclose(out.aux, h, 1e-5, 1e-6));
  CHECK(out.aux.abs().sum().item<double>() > 0);

  // Eval: no auxiliary output; forward is the last cell, as the last of outs.
  backbone->eval();
  const BackboneOutputs eval_out = backbone->forward_outputs(x);
  CHECK_FALSE(eval_out.aux.defined());
  REQUIRE(eval_out.outs.size() == 2);
  CHECK(torch::equal((*backbone)(x), eval_out.outs[1]));

  // Default out_indices: a single output outside training.
  Json single = darts_aux_table();
  single.erase("out_indices");
  auto plain = std::dynamic_pointer_cast<DartsBackbone>(build_darts(single));
  plain->eval();
  CHECK_FALSE(plain->has_multiple_outputs());
  plain->train();
  CHECK(plain->has_multiple_outputs());
  // A map smaller than 7x7 at cell 2/3 cannot feed the head.
  CHECK_THROWS_WITH(plain->forward_outputs(torch::randn({2, 1, 16, 16})),
                    Catch::Contains("at least 7x7"));
  // out_indices must end at the last cell, as MMRazor asserts.
  Json wrong = darts_aux_table();
  wrong["out_indices"] = {1};
  CHECK_THROWS_WITH(build_darts(wrong), Catch::Contains("last cell"));
}

TEST_CASE("DartsSubnetClsHead: loss = CE(main) + 0.4 CE(aux) in training, main logits in eval",
          "[darts]") {
  register_mutables();
  Json backbone = darts_aux_table();
  backbone.erase("out_indices");
  auto model = std::dynamic_pointer_cast<ImageClassifier>(
      test::build_model(darts_subnet_classifier(backbone, 48, 12)));
  REQUIRE(model);
  auto* head = dynamic_cast<DartsSubnetClsHead*>(&model->head());
  REQUIRE(head);
  CHECK(head->aux_in_channels() == 12);
  {  // logits far from uniform, so that the weights of the two losses show
    torch::NoGradGuard no_grad;
    head->fc().weight.normal_(0.0, 1.0);
    head->aux_linear().weight.normal_(0.0, 1.0);
    head->aux_linear().bias.normal_(0.0, 1.0);
  }
  torch::Tensor main_features, aux_features;
  int aux_calls = 0;
  head->fc().add_forward_hook(
      [&](nn::Module&, const nn::Inputs& in, torch::Tensor&) { main_features = in[0]; });
  head->aux_linear().add_forward_hook([&](nn::Module&, const nn::Inputs& in, torch::Tensor&) {
    aux_features = in[0];
    ++aux_calls;
  });
  const Batch batch{torch::randn({6, 1, 28, 28}), torch::tensor({0, 1, 2, 3, 4, 0})};

  model->train();
  const LossMap losses = model->loss(batch);
  std::vector<std::string> keys;
  for (const auto& item : losses) keys.push_back(item.first);
  CHECK(keys == std::vector<std::string>{"loss", "accuracy_top-1", "accuracy_top-2",
                                         "aux_head.loss", "aux_head.accuracy_top-1",
                                         "aux_head.accuracy_top-2"});
  REQUIRE(aux_calls == 1);
  CHECK(main_features.sizes() == torch::IntArrayRef({6, 48}));
  CHECK(aux_features.sizes() == torch::IntArrayRef({6, 12}));
  const torch::Tensor main_logits =
      torch::linear(main_features, head->fc().weight, head->fc().bias);
  const torch::Tensor aux_logits =
      torch::linear(aux_features, head->aux_linear().weight, head->aux_linear().bias);
  const torch::Tensor ce_main = torch::cross_entropy_loss(main_logits, batch.targets);
  const torch::Tensor ce_aux = torch::cross_entropy_loss(aux_logits, batch.targets);
  CHECK(losses[0].second.item<double>() == Approx(ce_main.item<double>()).epsilon(1e-5));
  CHECK(losses[3].second.item<double>() == Approx(0.4 * ce_aux.item<double>()).epsilon(1e-5));
  CHECK(total_loss(losses).item<double>() ==
        Approx((ce_main + 0.4 * ce_aux).item<double>()).epsilon(1e-5));
  const double top1 =
      main_logits.argmax(1).eq(batch.targets).to(torch::kDouble).mean().item<double>() * 100;
  CHECK(losses[1].second.item<double>() == Approx(top1));
  // The total's gradient reaches the auxiliary head's convs.
  total_loss(losses).backward();
  CHECK(named(*model, "backbone.auxliary_module.net.2.weight").grad().abs().sum().item<double>() >
        0);

  // Eval: the main logits only; the auxiliary classifier does not run.
  model->eval();
  torch::NoGradGuard no_grad;
  const LossMap eval_losses = model->loss(batch);
  REQUIRE(eval_losses.size() == 3);  // loss and the two accuracies
  CHECK(eval_losses[0].first == "loss");
  const torch::Tensor logits = model->forward_tensor(batch.inputs);
  CHECK(aux_calls == 1);
  CHECK(logits.sizes() == torch::IntArrayRef({6, 5}));
  nn::Module& gap = *model->neck();
  const torch::Tensor by_hand = torch::linear(gap(model->backbone()(batch.inputs)),
                                              head->fc().weight, head->fc().bias);
  CHECK(torch::allclose(logits, by_hand, 1e-5, 1e-6));
  CHECK(eval_losses[0].second.item<double>() ==
        Approx(torch::cross_entropy_loss(logits, batch.targets).item<double>()).epsilon(1e-5));

  // A head of auxiliary features needs a backbone that has them, of its width.
  Json no_aux = darts_backbone_table();
  CHECK_THROWS_WITH(test::build_model(darts_subnet_classifier(no_aux, 48, 12)),
                    Catch::Contains("auxliary = true"));
  CHECK_THROWS_WITH(test::build_model(darts_subnet_classifier(backbone, 48, 10)),
                    Catch::Contains("aux_in_channels"));
}

namespace {

/// Parameters of one DARTS op on `c` channels (affine BNs), from MMRazor's definitions.
int64_t darts_op_params(const std::string& op, int64_t c, int64_t stride) {
  const auto k2 = [&](int64_t k) { return c * k * k; };
  if (op == "zero") return 0;
  if (op == "skip_connect") return stride == 1 ? 0 : 2 * (c * c / 2) + 2 * c;  // FactorizedReduce
  if (op == "max_pool_3x3" || op == "avg_pool_3x3") return 2 * c;               // BN
  if (op == "sep_conv_3x3") return 2 * (k2(3) + c * c + 2 * c);  // twice dw, pw, BN
  if (op == "sep_conv_5x5") return 2 * (k2(5) + c * c + 2 * c);
  if (op == "dil_conv_3x3") return k2(3) + c * c + 2 * c;  // dw (dilated), pw, BN
  if (op == "dil_conv_5x5") return k2(5) + c * c + 2 * c;
  FAIL("unknown op " << op);
  return 0;
}

}  // namespace

TEST_CASE("A fixed DARTS genotype has exactly its chosen ops: parameters counted from it",
          "[darts]") {
  register_mutables();
  // MMRazor's published genotype (DARTS_SUBNET_CIFAR_PAPER_ALIAS), as shipped beside the config.
  const Json genotype = read_subnet_file(std::string(RAZOR_SOURCE_DIR) +
                                         "/configs/nas/darts_subnet_1xb96_cifar10.yaml");
  REQUIRE(genotype.size() == 2 * (4 + 2 + 3 + 4 + 5));  // 4 routes, 14 edges, normal and reduce
  Json backbone = darts_backbone_table();
  backbone["num_nodes"] = 4;
  backbone["num_layers"] = 5;  // reductions at cells 1 and 3; the auxiliary head reads cell 3
  backbone["base_channels"] = 4;
  backbone["norm_cfg"]["affine"] = true;
  backbone["auxliary"] = true;
  backbone["aux_channels"] = 8;
  backbone["aux_out_channels"] = 12;
  auto model = std::dynamic_pointer_cast<ImageClassifier>(
      test::build_model(darts_subnet_classifier(backbone, 4 * 16, 12)));
  REQUIRE(model);
  const int64_t supernet_params = test::num_parameters(*model);
  load_fix_subnet(*model, genotype, "darts_subnet_1xb96_cifar10.yaml");

  // The same count from the genotype: stem, then per cell the preprocessing and the chosen
  // op of each chosen edge, the auxiliary head after cell 3, and the two classifiers.
  const int64_t in = 1, stem = 3 * 4, layers = 5, classes = 5;
  int64_t expected = in * stem * 9 + 2 * stem;
  int64_t prev_prev = stem, prev = stem, c = 4, aux_in = 0;
  bool reduction = false;
  for (int64_t i = 0; i < layers; ++i) {
    const bool prev_reduction = reduction;
    reduction = i == layers / 3 || i == 2 * layers / 3;
    if (reduction) c *= 2;
    expected += (prev_reduction ? 2 * (prev_prev * c / 2) : prev_prev * c) + 2 * c;  // preproc0
    expected += prev * c + 2 * c;                                                    // preproc1
    const std::string kind = reduction ? "reduce" : "normal";
    for (int node = 2; node < 6; ++node) {
      const Json& edges = genotype[kind + "_n" + std::to_string(node)]["chosen"];
      REQUIRE(edges.size() == 2);
      for (const auto& edge : edges) {
        const std::string name = edge.get<std::string>();
        const int64_t input = std::stoll(name.substr(name.rfind("_p") + 2));
        const int64_t stride = reduction && input < 2 ? 2 : 1;
        expected += darts_op_params(genotype[name]["chosen"].get<std::string>(), c, stride);
      }
    }
    prev_prev = prev;
    prev = 4 * c;
    if (i == 2 * layers / 3) aux_in = prev;
  }
  expected += aux_in * 8 + 2 * 8 + 8 * 12 * 2 * 2 + 2 * 12;  // auxiliary head
  expected += prev * classes + classes + 12 * classes + classes;  // fc, aux_linear
  CHECK(prev == 4 * 16);
  CHECK(test::num_parameters(*model) == expected);
  CHECK(expected < supernet_params);

  // The chosen ops run: normal cells' node 5 keeps dil_conv_3x3 from input 2 and the skip
  // from input 0; the others are gone.
  std::set<std::string> names;
  for (const auto& item : model->named_parameters()) names.insert(item.key());
  CHECK(names.count("backbone.cells.0.nodes.3.route._edges.normal_n5_p2._candidates.dil_conv_3x3."
                    "conv1.1.weight") == 1);
  for (const auto& name : names) {
    INFO(name);
    CHECK(name.find("normal_n5_p1") == std::string::npos);  // an edge not chosen
    CHECK(name.find("sep_conv_5x5") == std::string::npos);  // an op never chosen
  }
  model->train();
  const LossMap losses = model->loss(Batch{torch::randn({2, 1, 28, 28}), torch::tensor({0, 3})});
  CHECK(losses.size() == 6);
}
