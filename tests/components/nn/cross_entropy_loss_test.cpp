// CrossEntropyLoss against a hand computation, with mmcls label smoothing.
#include "components/nn/cross_entropy_loss.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "components/architectures/register_architectures.h"
#include "engine/model.h"

using namespace razor;

namespace {

/// mean_i -sum_c q_ic log softmax(z_i)_c with q = (1 - e) onehot + e / C, by loops.
double hand_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target, double e) {
  const int64_t n = logits.size(0), c = logits.size(1);
  auto z = logits.accessor<float, 2>();
  auto y = target.accessor<int64_t, 1>();
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double max = z[i][0];
    for (int64_t k = 1; k < c; ++k) max = std::max<double>(max, z[i][k]);
    double sum = 0;
    for (int64_t k = 0; k < c; ++k) sum += std::exp(z[i][k] - max);
    const double log_sum = max + std::log(sum);
    for (int64_t k = 0; k < c; ++k) {
      const double q = (k == y[i] ? 1 - e : 0) + e / static_cast<double>(c);
      total -= q * (z[i][k] - log_sum);
    }
  }
  return total / static_cast<double>(n);
}

}  // namespace

TEST_CASE("CrossEntropyLoss with label smoothing and a weight equals a hand computation", "[nn]") {
  torch::manual_seed(0);
  auto logits = torch::randn({6, 5}) * 3;
  auto target = torch::tensor({0, 4, 2, 2, 1, 3}, torch::kLong);

  nn::CrossEntropyLoss plain;
  CHECK(plain(logits, target).item<double>() ==
        Approx(hand_cross_entropy(logits, target, 0.0)).epsilon(1e-5));
  CHECK(
      torch::allclose(plain(logits, target), torch::nn::functional::cross_entropy(logits, target)));

  nn::CrossEntropyLoss smooth(
      nn::CrossEntropyLossOptions().with_label_smooth_val(0.1).with_loss_weight(2.0));
  CHECK(smooth(logits, target).item<double>() ==
        Approx(2.0 * hand_cross_entropy(logits, target, 0.1)).epsilon(1e-5));

  // Soft targets equal to the smoothed one-hot give the same value.
  auto soft = torch::one_hot(target, 5).to(torch::kFloat) * 0.9 + 0.1 / 5;
  CHECK(plain(logits, soft).item<double>() ==
        Approx(hand_cross_entropy(logits, target, 0.1)).epsilon(1e-5));

  nn::CrossEntropyLoss none(nn::CrossEntropyLossOptions().with_reduction("none"));
  CHECK(none(logits, target).sizes() == torch::IntArrayRef({6}));
  CHECK_THROWS_WITH(nn::CrossEntropyLoss(nn::CrossEntropyLossOptions().with_reduction("avg")),
                    Catch::Contains("reduction"));
}

TEST_CASE("CrossEntropyLoss hooks see logits and target, config keys build it", "[nn]") {
  register_architectures();
  Json table = {{"type", "CrossEntropyLoss"}, {"label_smooth_val", 0.2}, {"loss_weight", 0.5}};
  Args args = Args::of(table, "model.head.loss");
  auto loss = std::dynamic_pointer_cast<nn::CrossEntropyLoss>(model_registry().build(args));
  REQUIRE(loss);
  torch::Tensor recorded_target;
  loss->add_forward_hook([&](nn::Module&, const nn::Inputs& inputs, torch::Tensor&) {
    REQUIRE(inputs.size() == 2);
    recorded_target = inputs[1];
  });
  auto logits = torch::randn({3, 4});
  auto target = torch::tensor({3, 0, 1}, torch::kLong);
  CHECK((*loss)(logits, target).item<double>() ==
        Approx(0.5 * hand_cross_entropy(logits, target, 0.2)).epsilon(1e-5));
  CHECK(torch::equal(recorded_target, target));

  Json bad = {{"type", "CrossEntropyLoss"}, {"label_smooth_val", 1.5}};
  Args bad_args = Args::of(bad, "model.head.loss");
  CHECK_THROWS_WITH(model_registry().build(bad_args),
                    Catch::Contains("model.head.loss.label_smooth_val"));

  Json smooth = {{"type", "LabelSmoothLoss"}, {"label_smooth_val", 0.1}, {"num_classes", 4}};
  Args smooth_args = Args::of(smooth, "model.head.loss");
  auto label_smooth =
      std::dynamic_pointer_cast<nn::CrossEntropyLoss>(model_registry().build(smooth_args));
  REQUIRE(label_smooth);
  CHECK(label_smooth->options().label_smooth_val == Approx(0.1));
}
