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
#include "engine/config.h"

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
  Json choices = supernet->mutator().current_choices();
  choices["module_0"] = "shuffle_7x7";
  choices["module_5"] = "shuffle_xception";
  supernet->mutator().set_choices(choices);
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
