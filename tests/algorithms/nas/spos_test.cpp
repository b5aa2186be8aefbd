// SPOS: one uniformly sampled subnet per loss, the same sequence for the same seed (as on
// every rank), norm_training, and fixing a subnet in the config.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "algorithms/nas/nas_algorithm.h"
#include "apps/register_all.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/batch_norm.h"
#include "components/mutables/mutable.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/model.h"
#include "engine/version.h"

using namespace razor;

namespace {

std::shared_ptr<SPOS> build_spos(uint64_t seed, const std::string& fix_subnet = "",
                                 bool norm_training = false) {
  register_all();
  const std::string file = std::string(RAZOR_SOURCE_DIR) +
                           "/configs/_base_/nas_backbones/spos_shufflenet_fmnist.toml";
  auto config = std::make_shared<Config>(load_config(file));
  Json& model = config->tree["model"];
  if (!fix_subnet.empty()) model["fix_subnet"] = fix_subnet;
  model["norm_training"] = norm_training;
  BuildContext context;
  context.seed = seed;
  Args args(model, "model", config);
  auto spos = std::dynamic_pointer_cast<SPOS>(model_registry().build(args, context));
  REQUIRE(spos);
  return spos;
}

Batch batch() {
  Batch b;
  b.inputs = torch::randn({4, 1, 28, 28});
  b.targets = torch::randint(10, {4}, torch::kLong);
  return b;
}

/// The supernet's current subnet with module_0 and module_5 set to other ops.
void choose_subnet(SPOS& supernet) {
  Json choices = supernet.mutator().current_choices();
  choices["module_0"] = "shuffle_7x7";
  choices["module_5"] = "shuffle_xception";
  supernet.mutator().set_choices(choices);
}

}  // namespace

TEST_CASE("SPOS samples a uniform subnet per loss, the same for the same seed", "[spos]") {
  auto a = build_spos(11), b = build_spos(11), c = build_spos(12);
  std::map<std::string, int> counts;
  bool differs = false;
  const Batch data = batch();
  const int n = 200;
  for (int i = 0; i < n; ++i) {
    a->loss(data);
    b->loss(data);
    c->loss(data);
    REQUIRE(a->mutator().current_choices() == b->mutator().current_choices());
    differs = differs || a->mutator().current_choices() != c->mutator().current_choices();
    counts[a->mutator().current_choices()["module_3"].get<std::string>()]++;
  }
  CHECK(differs);
  for (const auto& name : {"shuffle_3x3", "shuffle_5x5", "shuffle_7x7", "shuffle_xception"}) {
    CHECK(counts[name] / double(n) == Approx(0.25).margin(0.1));
  }
  CHECK(a->leaves_parameters_unused());
}

TEST_CASE("SPOS: norm_training keeps BatchNorm in training mode in eval", "[spos]") {
  auto plain = build_spos(1), normed = build_spos(1, "", true);
  plain->eval();
  normed->eval();
  int64_t training = 0, total = 0;
  for (const auto& m : normed->modules(false)) {
    if (dynamic_cast<nn::BatchNorm2d*>(m.get())) training += m->is_training(), ++total;
  }
  CHECK(total > 0);
  CHECK(training == total);
  for (const auto& m : plain->modules(false)) {
    if (dynamic_cast<nn::BatchNorm2d*>(m.get())) CHECK_FALSE(m->is_training());
  }
}

TEST_CASE("SPOS with fix_subnet builds only the chosen ops", "[spos]") {
  auto supernet = build_spos(2);
  choose_subnet(*supernet);
  const std::string path = (std::filesystem::temp_directory_path() / "razor_spos_subnet.yaml").string();
  write_subnet_file(path, export_fix_subnet(supernet->architecture()));
  auto fixed = build_spos(2, path);
  CHECK(fixed->mutator().search_groups().empty());
  CHECK(fixed->named_parameters().size() < supernet->named_parameters().size());
  CHECK(fixed->named_parameters().contains(
      "architecture.backbone.layers.0.0._candidates.shuffle_7x7.branch1.0.conv.weight"));
  CHECK_FALSE(fixed->named_parameters().contains(
      "architecture.backbone.layers.0.0._candidates.shuffle_3x3.branch1.0.conv.weight"));
  // Loss still works, with nothing to sample.
  CHECK(fixed->loss(batch()).size() == 1);
  std::filesystem::remove(path);
}

TEST_CASE("sub_model in mode mutable builds the static subnet: chosen ops in place, the supernet's logits", "[spos][sub_model]") {
  auto supernet = build_spos(3);
  choose_subnet(*supernet);
  supernet->eval();
  const Json subnet = export_fix_subnet(supernet->architecture());
  const auto dir = std::filesystem::temp_directory_path() / "razor_sub_model_mutable";
  std::filesystem::create_directories(dir);
  const std::string weights = (dir / "supernet.pth").string();
  CheckpointContents contents;
  contents.meta = {{"format", kCheckpointFormat}};
  contents.model = state_dict(*supernet);
  write_checkpoint(weights, contents, nullptr);
  const std::string yaml = (dir / "subnet.yaml").string();
  write_subnet_file(yaml, subnet);

  const std::string file = std::string(RAZOR_SOURCE_DIR) + "/configs/_base_/nas_backbones/spos_shufflenet_fmnist.toml";
  auto config = std::make_shared<Config>(load_config(file));
  auto build = [&](const Json& fix, const std::string& mode) {
    Json table = {{"type", "sub_model"},
                  {"cfg", config->tree["model"]["architecture"]},
                  {"fix_subnet", fix},
                  {"init_weight_from_supernet", true},
                  {"init_cfg", {{"type", "Pretrained"}, {"checkpoint", weights}}}};
    if (!mode.empty()) table["mode"] = mode;
    Args args(table, "model", config);
    auto model = std::dynamic_pointer_cast<Model>(model_registry().build(args, {}));
    REQUIRE(model);
    model->eval();
    return model;
  };
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({3, 1, 28, 28});
  const torch::Tensor expected = supernet->architecture().forward_tensor(x);
  // The mode is read from fix_subnet: a YAML file, or the same table inline.
  for (const auto& [fix, mode] : {std::pair<Json, std::string>{yaml, ""}, {subnet, ""}, {subnet, "mutable"}}) {
    auto model = build(fix, mode);
    CHECK((model->forward_tensor(x) - expected).abs().max().item<double>() < 1e-6);
    int64_t mutables = 0;
    for (const auto& m : model->modules(false)) mutables += dynamic_cast<Mutable*>(m.get()) != nullptr;
    CHECK(mutables == 0);
    // The chosen op in the block's place: its weights lose "_candidates.<op>".
    const auto params = model->named_parameters();
    CHECK(params.contains("backbone.layers.0.0.branch1.0.conv.weight"));
    CHECK(params.find("backbone.layers.0.0._candidates.shuffle_7x7.branch1.0.conv.weight") == nullptr);
    int64_t subnet_params = 0, fixed_params = 0;
    for (const auto& p : model->parameters()) subnet_params += p.numel();
    auto fixed = build_spos(3, yaml);
    for (const auto& p : fixed->architecture().parameters()) fixed_params += p.numel();
    CHECK(subnet_params == fixed_params);
  }
  // A channel-width mode given a NAS subnet says which mode it needs.
  CHECK_THROWS_WITH(build(subnet, "mutator"), Catch::Contains("mode = \"mutable\""));
  CHECK_THROWS_WITH(build(subnet, "bogus"), Catch::Contains("\"mutable\"") && Catch::Contains("bogus"));
  std::filesystem::remove_all(dir);
}
