// Mutables: sampling frequencies, choices, fixing, the differentiable mixers against the
// weighted sums written here, routes, values and derived values.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <map>

#include "components/mutables/choice_route.h"
#include "components/mutables/derived_mutable.h"
#include "components/mutables/mutable_op.h"
#include "components/mutables/mutable_value.h"
#include "components/nn/conv.h"
#include "engine/dist.h"
#include "engine/error.h"

using namespace razor;

namespace {

std::shared_ptr<nn::Module> conv(int64_t k) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 2, k).with_padding(k / 2));
}

Candidates three_convs() { return {{"k1", conv(1)}, {"k3", conv(3)}, {"k5", conv(5)}}; }

torch::Tensor run(nn::Module& m, const torch::Tensor& x) { return m(x); }

}  // namespace

TEST_CASE("OneShotMutableOP samples uniformly and runs the current candidate", "[mutables]") {
  OneShotMutableOP op(three_convs());
  CHECK(op.choices() == std::vector<Choice>{"k1", "k3", "k5"});
  CHECK(op.current_choice() == "k1");
  auto generator = dist::shared_generator(7, 1);
  std::map<std::string, int> counts;
  const int n = 30000;
  for (int i = 0; i < n; ++i) counts[op.sample_choice(generator).get<std::string>()]++;
  for (const auto& name : {"k1", "k3", "k5"}) CHECK(counts[name] / double(n) == Approx(1.0 / 3).margin(0.015));

  const torch::Tensor x = torch::randn({1, 2, 6, 6});
  op.set_current_choice("k5");
  CHECK(torch::equal(run(op, x), run(op.candidate("k5"), x)));
  // Ordered by parameter count: k5 is the largest, k1 the smallest.
  CHECK(op.max_choice() == "k5");
  CHECK(op.min_choice() == "k1");
  CHECK_THROWS_WITH(op.set_current_choice("k7"), Catch::Contains("\"k7\" is not one of its choices") &&
                                                      Catch::Contains("\"k1\", \"k3\", \"k5\""));
}

TEST_CASE("fixing an op mutable drops the other candidates", "[mutables]") {
  OneShotMutableOP op(three_convs());
  const torch::Tensor x = torch::randn({1, 2, 6, 6});
  const torch::Tensor expected = run(op.candidate("k3"), x);
  op.fix_chosen("k3");
  CHECK(op.is_fixed());
  CHECK(op.choices() == std::vector<Choice>{"k3"});
  CHECK(op.named_parameters().size() == 2);
  CHECK(op.named_parameters().contains("_candidates.k3.weight"));
  CHECK(torch::equal(run(op, x), expected));
  CHECK_THROWS(op.set_current_choice("k1"));
  CHECK_NOTHROW(op.fix_chosen("k3"));
  CHECK(op.dump_chosen() == Json{{"chosen", "k3"}, {"all_choices", {"k3"}}});
}

TEST_CASE("OneShotProbMutableOP samples with its probabilities", "[mutables]") {
  OneShotProbMutableOP op(three_convs(), {0.2, 0.5, 0.3});
  auto generator = dist::shared_generator(3, 1);
  std::map<std::string, int> counts;
  const int n = 40000;
  for (int i = 0; i < n; ++i) counts[op.sample_choice(generator).get<std::string>()]++;
  CHECK(counts["k1"] / double(n) == Approx(0.2).margin(0.01));
  CHECK(counts["k3"] / double(n) == Approx(0.5).margin(0.01));
  CHECK(counts["k5"] / double(n) == Approx(0.3).margin(0.01));
  CHECK_THROWS_WITH(OneShotProbMutableOP(three_convs(), {0.5, 0.5, 0.5}), Catch::Contains("sum to 1"));
}

TEST_CASE("DiffMutableOP is the softmax-weighted sum of its candidates", "[mutables]") {
  DiffMutableOP op(three_convs());
  const torch::Tensor alpha = torch::tensor({0.3, -1.0, 2.0}).requires_grad_(true);
  op.set_arch_param(alpha);
  const torch::Tensor x = torch::randn({2, 2, 5, 5});
  const torch::Tensor out = run(op, x);
  const auto p = torch::softmax(alpha.detach(), 0);
  const torch::Tensor expected = p[0] * run(op.candidate("k1"), x) + p[1] * run(op.candidate("k3"), x) +
                                 p[2] * run(op.candidate("k5"), x);
  CHECK(torch::allclose(out, expected, 1e-5, 1e-6));
  // α gets a gradient through the mixture.
  out.sum().backward();
  REQUIRE(alpha.grad().defined());
  CHECK(alpha.grad().abs().sum().item<double>() > 0);
  auto generator = dist::shared_generator(1, 1);
  CHECK(op.sample_choice(generator) == "k5");  // the argmax
}

TEST_CASE("OneHotMutableOP samples one op and fixes the argmax", "[mutables]") {
  OneHotMutableOP op(three_convs(), /*fix_threshold=*/0.3);
  op.set_arch_param(torch::tensor({0.0, 0.0, 0.0}));
  op.train();
  auto generator = dist::shared_generator(5, 1);
  std::map<size_t, int> counts;
  const torch::Tensor x = torch::randn({1, 2, 4, 4});
  for (int i = 0; i < 3000; ++i) {
    op.sample_weights(generator);
    counts[op.sampled_index()]++;
  }
  for (size_t i = 0; i < 3; ++i) CHECK(counts[i] / 3000.0 == Approx(1.0 / 3).margin(0.04));
  op.sample_weights(generator);
  CHECK(op.arch_weights().sum().item<double>() == 1.0);
  CHECK(torch::allclose(run(op, x), run(op.candidate(op.sampled_index()), x)));
  CHECK_FALSE(op.fix_if_confident());
  // The third candidate dominates: the op fixes to it (MMRazor would fix the second).
  op.set_arch_param(torch::tensor({0.0, 0.1, 3.0}));
  CHECK(op.fix_if_confident());
  CHECK(op.current_choice() == "k5");
}

TEST_CASE("DiffChoiceRoute weights its edges by softmax and keeps the top edges", "[mutables]") {
  DiffChoiceRoute route({{"e0", conv(1)}, {"e1", conv(3)}, {"e2", conv(1)}}, true, 2);
  const torch::Tensor alpha = torch::tensor({1.0, -2.0, 0.5});
  route.set_arch_param(alpha);
  std::vector<torch::Tensor> xs = {torch::randn({1, 2, 4, 4}), torch::randn({1, 2, 4, 4}),
                                   torch::randn({1, 2, 4, 4})};
  const auto p = torch::softmax(alpha, 0);
  torch::Tensor expected;
  for (int i = 0; i < 3; ++i) {
    torch::Tensor term = p[i] * run(route.edge(i), xs[i]);
    expected = i == 0 ? term : expected + term;
  }
  CHECK(torch::allclose(route(xs), expected, 1e-5, 1e-6));
  auto generator = dist::shared_generator(1, 1);
  const Choice top2 = route.sample_choice(generator);
  CHECK(top2 == Json{"e0", "e2"});
  route.fix_chosen(top2);
  CHECK(torch::allclose(route(xs), run(route.edge(0), xs[0]) + run(route.edge(2), xs[2])));
  CHECK_THROWS_WITH(route.set_current_choice(Json{"e9"}), Catch::Contains("\"e9\""));
}

TEST_CASE("GumbelChoiceRoute with hard weights picks one edge forward", "[mutables]") {
  GumbelChoiceRoute route({{"e0", conv(1)}, {"e1", conv(1)}}, /*tau=*/0.5, /*hard=*/true);
  route.set_arch_param(torch::tensor({0.2, 0.1}));
  std::vector<torch::Tensor> xs = {torch::randn({1, 2, 3, 3}), torch::randn({1, 2, 3, 3})};
  const torch::Tensor a = run(route.edge(0), xs[0]), b = run(route.edge(1), xs[1]);
  for (int i = 0; i < 5; ++i) {
    const torch::Tensor out = route(xs);
    CHECK((torch::allclose(out, a, 1e-5, 1e-6) || torch::allclose(out, b, 1e-5, 1e-6)));
  }
}

TEST_CASE("value mutables: sorted one-shot values, min, max, default", "[mutables]") {
  OneShotMutableValue kernel({7, 3, 5});
  CHECK(kernel.choices() == std::vector<Choice>{3, 5, 7});
  CHECK(kernel.current_choice() == 7);
  CHECK(kernel.min_choice() == 3);
  CHECK(kernel.max_choice() == 7);
  kernel.set_current_choice(5.0);  // a YAML file may write 5.0
  CHECK(kernel.current_choice() == 5);
  CHECK_THROWS_WITH(kernel.set_current_choice(4), Catch::Contains("4 is not one of its choices (3, 5, 7)"));
  MutableValue plain({6, 4});
  CHECK(plain.current_choice() == 6);
  CHECK(plain.max_choice() == 6);
  CHECK(plain.min_choice() == 4);
  CHECK_FALSE(plain.is_module_mutable());
}

TEST_CASE("DerivedMutable follows its sources through *, // and make_divisible", "[mutables]") {
  auto expand = std::make_shared<OneShotMutableValue>(std::vector<Choice>{3, 6});
  auto width = std::make_shared<OneShotMutableValue>(std::vector<Choice>{0.5, 1.0});
  const DerivedMutable hidden = (expand * 20.0).make_divisible(8);
  const DerivedMutable halves = DerivedMutable(expand).floordiv(4);
  const DerivedMutable product = (DerivedMutable(expand) * DerivedMutable(width)) * 10.0;
  expand->set_current_choice(3);
  width->set_current_choice(0.5);
  CHECK(hidden.current_int() == 64);  // make_divisible(60, 8) = 64
  CHECK(halves.current_int() == 0);   // 3 // 4
  CHECK(product.current_choice() == Approx(15.0));
  expand->set_current_choice(6);
  width->set_current_choice(1.0);
  CHECK(hidden.current_int() == 120);  // make_divisible(120, 8) = 120
  CHECK(halves.current_int() == 1);    // 6 // 4
  CHECK(product.current_choice() == Approx(60.0));
  CHECK(product.source_mutables().size() == 2);
}
