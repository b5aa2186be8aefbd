#include "datasets/transforms.h"

#include <catch2/catch.hpp>
#include <set>

#include "datasets/register_datasets.h"
#include "tests/datasets/temp_dir.h"

using namespace razor::data;
using razor::Args;
using razor::Json;
using razor::test::to_tensor;

namespace {

cv::Mat ramp(int rows, int cols, int channels) {
  cv::Mat image(rows, cols, CV_8UC(channels));
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < cols; ++x) {
      for (int c = 0; c < channels; ++c) {
        image.ptr<uint8_t>(y)[x * channels + c] =
            static_cast<uint8_t>((y * 31 + x * 7 + c * 50) % 256);
      }
    }
  }
  return image;
}

std::shared_ptr<Transform> build(Json table) {
  razor::register_datasets();
  Args args = Args::of(table, "pipeline[0]");
  return transform_registry().build(args);
}

}  // namespace

TEST_CASE("Normalize equals (x / 255 - mean) / std", "[datasets]") {
  std::mt19937_64 rng(0);
  const cv::Mat source = ramp(5, 7, 3);
  const cv::Mat before = source.clone();
  cv::Mat image = source;
  build({{"type", "Normalize"},
         {"mean", {0.4914, 0.4822, 0.4465}},
         {"std", {0.2470, 0.2435, 0.2616}}})
      ->apply(image, rng);
  REQUIRE(image.type() == CV_32FC3);
  auto expected = (to_tensor(source).to(torch::kFloat32) / 255.0 -
                   torch::tensor({0.4914, 0.4822, 0.4465}, torch::kFloat32)) /
                  torch::tensor({0.2470, 0.2435, 0.2616}, torch::kFloat32);
  CHECK(torch::allclose(to_tensor(image), expected, 1e-5, 1e-5));
  CHECK(cv::norm(source, before, cv::NORM_INF) == 0);  // the input was not written to

  // One channel, the Fashion-MNIST statistics; float input is taken in [0, 1] units.
  cv::Mat gray = ramp(4, 4, 1);
  auto fmnist = build({{"type", "Normalize"}, {"mean", {0.2860}}, {"std", {0.3530}}});
  cv::Mat out = gray;
  fmnist->apply(out, rng);
  CHECK(torch::allclose(
      to_tensor(out), (to_tensor(gray).to(torch::kFloat32) / 255.0 - 0.2860) / 0.3530, 1e-5, 1e-5));
  cv::Mat as_float;
  gray.convertTo(as_float, CV_32F, 1.0 / 255.0);
  fmnist->apply(as_float, rng);
  CHECK(torch::allclose(to_tensor(as_float), to_tensor(out), 1e-5, 1e-5));

  CHECK_THROWS_WITH(build({{"type", "Normalize"}, {"mean", {0.5, 0.5}}, {"std", {0.5}}}),
                    Catch::Contains("pipeline[0].std"));
  CHECK_THROWS_WITH(build({{"type", "Normalize"}, {"mean", {0.5}}, {"std", {0.0}}}),
                    Catch::Contains("std must be > 0"));
}

TEST_CASE("RandomFlip with prob 1 equals torch::flip; prob 0 is the identity", "[datasets]") {
  std::mt19937_64 rng(3);
  const cv::Mat source = ramp(6, 9, 3);
  cv::Mat image = source;
  build({{"type", "RandomFlip"}, {"prob", 1.0}})->apply(image, rng);
  CHECK(torch::equal(to_tensor(image), torch::flip(to_tensor(source), {1})));
  image = source;
  build({{"type", "RandomFlip"}, {"prob", 1.0}, {"direction", "vertical"}})->apply(image, rng);
  CHECK(torch::equal(to_tensor(image), torch::flip(to_tensor(source), {0})));
  image = source;
  build({{"type", "RandomFlip"}, {"prob", 0.0}})->apply(image, rng);
  CHECK(torch::equal(to_tensor(image), to_tensor(source)));
  CHECK_THROWS_WITH(build({{"type", "RandomFlip"}, {"direction", "diagonal"}}),
                    Catch::Contains("direction"));
}

TEST_CASE("RandomCrop with padding is a slice of the zero-padded image", "[datasets]") {
  const cv::Mat source = ramp(28, 28, 1);
  auto crop = build({{"type", "RandomCrop"}, {"size", 28}, {"padding", 4}});
  auto padded = torch::constant_pad_nd(to_tensor(source).permute({2, 0, 1}), {4, 4, 4, 4}, 0)
                    .permute({1, 2, 0});
  std::set<std::pair<int, int>> offsets;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(seed);
    cv::Mat image = source;
    crop->apply(image, rng);
    REQUIRE(image.rows == 28);
    REQUIRE(image.cols == 28);
    auto out = to_tensor(image);
    bool found = false;
    for (int y = 0; y <= 8 && !found; ++y) {
      for (int x = 0; x <= 8 && !found; ++x) {
        if (torch::equal(out, padded.slice(0, y, y + 28).slice(1, x, x + 28))) {
          found = true;
          offsets.insert({y, x});
        }
      }
    }
    CHECK(found);
    // The same seed gives the same crop.
    std::mt19937_64 again(seed);
    cv::Mat second = source;
    crop->apply(second, again);
    CHECK(torch::equal(to_tensor(second), out));
  }
  CHECK(offsets.size() > 10);  // the offsets vary with the seed

  // Asymmetric sizes and a fill value.
  std::mt19937_64 rng(1);
  cv::Mat image = ramp(10, 12, 3);
  build({{"type", "RandomCrop"}, {"size", {6, 8}}, {"padding", {1, 2, 3, 4}}, {"fill", 7}})
      ->apply(image, rng);
  CHECK(image.rows == 6);
  CHECK(image.cols == 8);
  image = ramp(10, 12, 1);
  CHECK_THROWS_WITH(build({{"type", "RandomCrop"}, {"size", 16}})->apply(image, rng),
                    Catch::Contains("larger"));
  build({{"type", "RandomCrop"}, {"size", 16}, {"pad_if_needed", true}})->apply(image, rng);
  CHECK(image.rows == 16);
  CHECK(image.cols == 16);
}

TEST_CASE("Resize and CenterCrop give the requested shapes", "[datasets]") {
  std::mt19937_64 rng(0);
  cv::Mat image = ramp(28, 28, 1);
  build({{"type", "Resize"}, {"size", {32, 40}}})->apply(image, rng);
  CHECK(image.rows == 32);
  CHECK(image.cols == 40);
  CHECK(image.channels() == 1);

  image = ramp(20, 40, 3);
  build({{"type", "Resize"}, {"size", 10}, {"interpolation", "area"}})->apply(image, rng);
  CHECK(image.rows == 10);  // the shorter side, aspect kept
  CHECK(image.cols == 20);
  CHECK(image.channels() == 3);

  const cv::Mat source = ramp(9, 10, 1);
  image = source;
  build({{"type", "CenterCrop"}, {"size", {5, 4}}})->apply(image, rng);
  REQUIRE(image.rows == 5);
  REQUIRE(image.cols == 4);
  // torchvision: top = round(4 / 2) = 2, left = round(6 / 2) = 3.
  CHECK(torch::equal(to_tensor(image), to_tensor(source).slice(0, 2, 7).slice(1, 3, 7)));
  image = ramp(3, 3, 1);
  build({{"type", "CenterCrop"}, {"size", 5}})->apply(image, rng);
  CHECK(image.rows == 5);
  CHECK(cv::countNonZero(image.row(0)) == 0);  // zero padding on top

  CHECK_THROWS_WITH(build({{"type", "Resize"}, {"size", {0, 3}}}), Catch::Contains("size"));
  CHECK_THROWS_WITH(build({{"type", "Resize"}, {"size", 8}, {"interpolation", "lanczos"}}),
                    Catch::Contains("interpolation"));
  CHECK_THROWS_WITH(build({{"type", "Resize"}, {"sise", 8}}), Catch::Contains("size"));
  CHECK_THROWS_WITH(build({{"type", "RandomCrop"}, {"size", 8}, {"paddin", 2}}),
                    Catch::Contains("did you mean \"padding\""));
}
