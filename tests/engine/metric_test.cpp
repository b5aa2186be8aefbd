#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/metric.h"

using namespace razor;

namespace {

// Seven samples over six classes, no ties within a row. The rank of the target among its
// row's scores (1 = highest) is written after each row.
torch::Tensor first_scores() {
  return torch::tensor({{0.1, 0.9, 0.3, 0.2, 0.5, 0.4},    // target 1: rank 1
                        {0.9, 0.1, 0.8, 0.7, 0.6, 0.5},    // target 1: rank 6
                        {0.2, 0.3, 0.9, 0.1, 0.8, 0.7},    // target 4: rank 2
                        {5.0, 4.0, 3.0, 2.0, 1.0, 0.0}},   // target 0: rank 1
                       torch::kFloat);
}
torch::Tensor first_targets() { return torch::tensor({1, 1, 4, 0}, torch::kLong); }

torch::Tensor second_scores() {
  return torch::tensor({{0.0, 1.0, 2.0, 3.0, 4.0, 5.0},          // target 1: rank 5
                        {-1.0, -2.0, -3.0, -4.0, -5.0, -6.0},    // target 5: rank 6
                        {0.3, 0.1, 0.2, 0.6, 0.5, 0.4}},         // target 3: rank 1
                       torch::kFloat);
}
torch::Tensor second_targets() { return torch::tensor({1, 5, 3}, torch::kLong); }

Batch batch_of(const torch::Tensor& scores, const torch::Tensor& targets) {
  return Batch{torch::zeros({scores.size(0), 1}), targets, {}};
}

}  // namespace

TEST_CASE("Accuracy counts top-1 and top-5 hits on hand-made scores", "[metric]") {
  Accuracy accuracy({1, 5});
  accuracy.process(first_scores(), batch_of(first_scores(), first_targets()));
  auto result = accuracy.compute();
  REQUIRE(result.size() == 2);
  CHECK(result.at("accuracy/top1") == Approx(100.0 * 2 / 4));  // ranks 1, 6, 2, 1
  CHECK(result.at("accuracy/top5") == Approx(100.0 * 3 / 4));

  accuracy.reset();
  CHECK(accuracy.compute().at("accuracy/top1") == 0.0);  // nothing processed
  accuracy.process(second_scores(), batch_of(second_scores(), second_targets()));
  result = accuracy.compute();
  CHECK(result.at("accuracy/top1") == Approx(100.0 * 1 / 3));  // ranks 5, 6, 1
  CHECK(result.at("accuracy/top5") == Approx(100.0 * 2 / 3));
}

TEST_CASE("Accuracy over a batch split in two process() calls is that of the whole batch",
          "[metric]") {
  const auto scores = torch::cat({first_scores(), second_scores()});
  const auto targets = torch::cat({first_targets(), second_targets()});

  Accuracy whole({1, 5});
  whole.process(scores, batch_of(scores, targets));
  Accuracy split({1, 5});
  split.process(first_scores(), batch_of(first_scores(), first_targets()));
  split.process(second_scores(), batch_of(second_scores(), second_targets()));

  // Ranks 1, 6, 2, 1, 5, 6, 1: three in the top 1, five in the top 5, of seven.
  for (auto* metric : {&whole, &split}) {
    auto result = metric->compute();
    CHECK(result.at("accuracy/top1") == Approx(100.0 * 3 / 7));
    CHECK(result.at("accuracy/top5") == Approx(100.0 * 5 / 7));
  }
  // Not the mean of the two batches' accuracies (50% and 33.3% top-1).
  CHECK(split.compute().at("accuracy/top1") != Approx((50.0 + 100.0 / 3) / 2));
}

TEST_CASE("Accuracy reports only the k it was given and rejects k above the classes",
          "[metric]") {
  Accuracy top1;
  top1.process(first_scores(), batch_of(first_scores(), first_targets()));
  const auto result = top1.compute();
  REQUIRE(result.size() == 1);
  CHECK(result.at("accuracy/top1") == Approx(50.0));

  Accuracy top7({1, 7});
  try {
    top7.process(first_scores(), batch_of(first_scores(), first_targets()));
    FAIL("top-7 accuracy over six classes was computed");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains("topk 7") && Catch::Contains("6"));
  }
}
