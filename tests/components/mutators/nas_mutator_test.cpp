// NasMutator search groups (alias, custom groups), sampling, architecture parameters, and
// subnet files: export, YAML round-trip, load and its errors.
#include "components/mutators/nas_mutator.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "components/mutables/mutable_op.h"
#include "components/mutables/mutable_value.h"
#include "components/mutators/fix_subnet.h"
#include "components/nn/conv.h"
#include "engine/error.h"

using namespace razor;

namespace {

std::shared_ptr<nn::Module> conv(int64_t k) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 2, k).with_padding(k / 2));
}

Candidates ops() { return {{"k1", conv(1)}, {"k3", conv(3)}}; }

/// Four op mutables (b and c share the alias "shared"), one value, one differentiable op.
struct Supernet : torch::nn::Module {
  Supernet() {
    a = register_module("a", std::make_shared<OneShotMutableOP>(ops()));
    b = register_module("b", std::make_shared<OneShotMutableOP>(ops(), "shared"));
    c = register_module("c", std::make_shared<OneShotMutableOP>(ops(), "shared"));
    e = register_module("e", std::make_shared<OneShotMutableOP>(ops()));
    v = register_module("v", std::make_shared<OneShotMutableValue>(std::vector<Choice>{3, 5, 7}));
    d = register_module("d", std::make_shared<DiffMutableOP>(ops()));
  }
  std::shared_ptr<OneShotMutableOP> a, b, c, e;
  std::shared_ptr<OneShotMutableValue> v;
  std::shared_ptr<DiffMutableOP> d;
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("razor_mutator_test_" + name)).string();
}

}  // namespace

TEST_CASE("NasMutator forms alias and single groups with stable keys", "[mutators]") {
  Supernet net;
  NasMutator mutator;
  mutator.prepare(net);
  const auto& groups = mutator.search_groups();
  REQUIRE(groups.size() == 5);
  CHECK(groups[0].key == "module_0");
  CHECK(groups[0].names == std::vector<std::string>{"a"});
  CHECK(groups[1].key == "module_1");
  CHECK(groups[1].names == std::vector<std::string>{"b", "c"});
  CHECK(groups[1].subnet_name() == "shared");
  CHECK(groups[3].key == "value_3");
  CHECK(groups[4].arch_param.defined());
  CHECK(mutator.arch_params().size() == 1);
  CHECK(mutator.named_parameters().contains("arch_params.module_4"));
  CHECK(groups[4].arch_param.abs().max().item<double>() < 0.01);  // randn * 1e-3

  // An alias group shares one choice.
  Json choices = mutator.current_choices();
  choices["module_1"] = "k3";
  mutator.set_choices(choices);
  CHECK(net.b->current_choice() == "k3");
  CHECK(net.c->current_choice() == "k3");
  CHECK(mutator.max_choices()["value_3"] == 7);
  CHECK(mutator.min_choices()["value_3"] == 3);

  // Random samples are uniform per group, and the shared members always agree.
  std::map<std::string, int> counts;
  for (int i = 0; i < 4000; ++i) {
    mutator.set_choices(mutator.sample_choices());
    REQUIRE(net.b->current_choice() == net.c->current_choice());
    counts[net.b->current_choice().get<std::string>()]++;
    counts["v" + net.v->current_choice().dump()]++;
  }
  CHECK(counts["k3"] / 4000.0 == Approx(0.5).margin(0.03));
  CHECK(counts["v5"] / 4000.0 == Approx(1.0 / 3).margin(0.03));

  Json incomplete = mutator.current_choices();
  incomplete.erase("module_0");
  CHECK_THROWS_WITH(mutator.set_choices(incomplete), Catch::Contains("module_0"));
  Json bad = mutator.current_choices();
  bad["module_9"] = "k1";
  CHECK_THROWS_WITH(mutator.set_choices(bad), Catch::Contains("no search group \"module_9\""));
}

TEST_CASE("two mutators with one seed draw the same subnets", "[mutators]") {
  Supernet n1, n2;
  NasMutatorOptions options;
  options.seed = 42;
  NasMutator m1(options), m2(options);
  m1.prepare(n1);
  m2.prepare(n2);
  for (int i = 0; i < 20; ++i) CHECK(m1.sample_choices() == m2.sample_choices());
  CHECK(torch::equal(m1.arch_params()[0], m2.arch_params()[0]));
}

TEST_CASE("custom_groups share one choice", "[mutators]") {
  Supernet net;
  NasMutatorOptions options;
  options.custom_groups = {{"a", "e"}};
  NasMutator mutator(options);
  mutator.prepare(net);
  REQUIRE(mutator.search_groups().size() == 4);
  CHECK(mutator.search_groups()[0].names == std::vector<std::string>{"a", "e"});
  for (int i = 0; i < 50; ++i) {
    mutator.set_choices(mutator.sample_choices());
    REQUIRE(net.a->current_choice() == net.e->current_choice());
  }
  options.custom_groups = {{"a", "nope"}};
  NasMutator broken(options);
  Supernet other;
  CHECK_THROWS_WITH(broken.prepare(other), Catch::Contains("no mutable is named \"nope\""));
}

TEST_CASE("subnet files round-trip and fix the supernet", "[mutators]") {
  Supernet net;
  NasMutator mutator;
  mutator.prepare(net);
  Json choices = mutator.current_choices();
  choices["module_0"] = "k3";
  choices["module_1"] = "k3";
  choices["value_3"] = 5;
  mutator.set_choices(choices);
  const Json subnet = export_fix_subnet(net);
  CHECK(subnet == Json{{"a", {{"chosen", "k3"}}},
                       {"shared", {{"chosen", "k3"}}},
                       {"e", {{"chosen", "k1"}}},
                       {"v", {{"chosen", 5}}},
                       {"d", {{"chosen", "k1"}}}});
  const std::string path = temp_path("subnet.yaml");
  write_subnet_file(path, subnet);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("a:\n  chosen: k3") != std::string::npos);
  CHECK(read_subnet_file(path) == subnet);

  Supernet fresh;
  load_fix_subnet(fresh, read_subnet_file(path), path);
  CHECK(fresh.a->is_fixed());
  CHECK(fresh.a->current_choice() == "k3");
  CHECK(fresh.c->current_choice() == "k3");
  CHECK(fresh.v->current_choice() == 5);
  CHECK_FALSE(fresh.named_parameters().contains("a._candidates.k1.weight"));
  CHECK(fresh.named_parameters().contains("a._candidates.k3.weight"));
  // Nothing is left to search.
  NasMutator after;
  after.prepare(fresh);
  CHECK(after.search_groups().empty());
  std::filesystem::remove(path);
}

TEST_CASE("bad subnet files name the mutable and the valid choices", "[mutators]") {
  const Json good = {{"a", {{"chosen", "k3"}}}, {"shared", {{"chosen", "k3"}}},
                     {"e", {{"chosen", "k1"}}}, {"v", {{"chosen", 5}}},
                     {"d", {{"chosen", "k1"}}}};
  {
    Supernet net;
    Json missing = good;
    missing.erase("e");
    CHECK_THROWS_WITH(load_fix_subnet(net, missing, "x.yaml"),
                      Catch::Contains("x.yaml") && Catch::Contains("no choice for mutable \"e\""));
  }
  {
    Supernet net;
    Json unknown = good;
    unknown["backbone.zz"] = {{"chosen", "k1"}};
    CHECK_THROWS_WITH(load_fix_subnet(net, unknown, "x.yaml"),
                      Catch::Contains("\"backbone.zz\" is not a mutable of this model"));
  }
  {
    Supernet net;
    Json wrong = good;
    wrong["v"] = {{"chosen", 4}};
    CHECK_THROWS_WITH(load_fix_subnet(net, wrong, "x.yaml"),
                      Catch::Contains("v: 4 is not one of its choices (3, 5, 7)"));
  }
  CHECK_THROWS_WITH(read_subnet_file(temp_path("absent.yaml")), Catch::Contains("not found"));
  const std::string broken = temp_path("broken.yaml");
  std::ofstream(broken) << "a: [k1,\n";
  CHECK_THROWS_WITH(read_subnet_file(broken), Catch::Contains("not valid YAML"));
  std::filesystem::remove(broken);
}
