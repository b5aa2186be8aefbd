#include "datasets/transforms.h"

#include <catch2/catch.hpp>
#include <set>

#include "datasets/random.h"
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

TEST_CASE("RandomFlip with prob 1 equals torch::flip, prob 0 is the identity", "[datasets]") {
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

TEST_CASE("RandomResizedCrop takes a crop of the drawn area and ratio, or the central one",
          "[datasets]") {
  // A quarter of the area at ratio 1 of a 16 x 16 image is an 8 x 8 crop; resized to 8 x 8 it
  // is that slice of the image.
  const cv::Mat source = ramp(16, 16, 3);
  auto crop = build({{"type", "RandomResizedCrop"}, {"size", 8}, {"scale", {0.25, 0.25}},
                     {"ratio", {1.0, 1.0}}});
  const auto full = to_tensor(source);
  std::set<std::pair<int, int>> offsets;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    std::mt19937_64 rng(seed);
    cv::Mat image = source;
    crop->apply(image, rng);
    REQUIRE(image.rows == 8);
    REQUIRE(image.cols == 8);
    const auto out = to_tensor(image);
    bool found = false;
    for (int y = 0; y <= 8 && !found; ++y) {
      for (int x = 0; x <= 8 && !found; ++x) {
        if (torch::equal(out, full.slice(0, y, y + 8).slice(1, x, x + 8))) {
          found = true;
          offsets.insert({y, x});
        }
      }
    }
    CHECK(found);
  }
  CHECK(offsets.size() > 10);

  // Ratio 2 of the whole 10 x 10 area never fits (w = 14): the central crop of the clamped
  // ratio, 5 rows from row 2, all 10 columns.
  const cv::Mat square = ramp(10, 10, 1);
  cv::Mat image = square;
  std::mt19937_64 rng(0);
  build({{"type", "RandomResizedCrop"}, {"size", {5, 10}}, {"scale", {1.0, 1.0}}, {"ratio", {2.0, 2.0}}})
      ->apply(image, rng);
  CHECK(torch::equal(to_tensor(image), to_tensor(square).slice(0, 2, 7)));

  // Any drawn crop is resized to the size asked for.
  image = ramp(30, 20, 3);
  build({{"type", "RandomResizedCrop"}, {"size", 24}})->apply(image, rng);
  CHECK(image.rows == 24);
  CHECK(image.cols == 24);

  CHECK_THROWS_WITH(build({{"type", "RandomResizedCrop"}, {"size", 8}, {"scale", {0.5, 0.1}}}),
                    Catch::Contains("scale"));
  CHECK_THROWS_WITH(build({{"type", "RandomResizedCrop"}, {"size", 8}, {"scale", {0.5, 2.0}}}),
                    Catch::Contains("scale"));
}

TEST_CASE("ColorJitter blends with black, the mean grey or the greyscale by a factor in range",
          "[datasets]") {
  // A float RGB image with values well inside (0, 1), so no clamping happens.
  cv::Mat source(4, 5, CV_32FC3);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x) source.at<cv::Vec3f>(y, x) = cv::Vec3f(0.2f + 0.05f * x, 0.3f + 0.04f * y, 0.4f);
  }
  const auto input = to_tensor(source).to(torch::kFloat64);
  const auto weights = torch::tensor({0.299, 0.587, 0.114}, torch::kFloat64);
  const auto grey = (input * weights).sum(-1, true);

  // out = f * x + (1 - f) * other: f read from one value must explain every value.
  auto check_blend = [&](const Json& table, const torch::Tensor& other, double strength) {
    std::set<double> factors;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      std::mt19937_64 rng(seed);
      cv::Mat image = source;
      build(table)->apply(image, rng);
      const auto out = to_tensor(image).to(torch::kFloat64);
      const auto target = other.expand_as(input);
      const double f = ((out[0][0][0] - target[0][0][0]) / (input[0][0][0] - target[0][0][0])).item<double>();
      CHECK(f >= 1.0 - strength - 1e-4);
      CHECK(f <= 1.0 + strength + 1e-4);
      CHECK(torch::allclose(out, f * input + (1 - f) * target, 0, 2e-5));
      factors.insert(std::round(f * 1e4));
    }
    CHECK(factors.size() > 10);  // the factor is drawn per image
  };
  check_blend({{"type", "ColorJitter"}, {"brightness", 0.4}}, torch::zeros({1}, torch::kFloat64), 0.4);
  check_blend({{"type", "ColorJitter"}, {"saturation", 0.4}}, grey, 0.4);
  check_blend({{"type", "ColorJitter"}, {"contrast", 0.3}}, grey.mean(), 0.3);

  // Hue turns the colour wheel and keeps greys; uint8 images stay uint8.
  cv::Mat grey_image(3, 3, CV_8UC3, cv::Scalar(90, 90, 90));
  std::mt19937_64 rng(3);
  build({{"type", "ColorJitter"}, {"hue", 0.5}})->apply(grey_image, rng);
  REQUIRE(grey_image.type() == CV_8UC3);
  CHECK(cv::countNonZero(grey_image.reshape(1) != 90) == 0);
  cv::Mat red(1, 1, CV_32FC3, cv::Scalar(1.0, 0.0, 0.0));
  build({{"type", "ColorJitter"}, {"hue", 0.5}})->apply(red, rng);
  const auto pixel = red.at<cv::Vec3f>(0, 0);
  CHECK(std::max({pixel[0], pixel[1], pixel[2]}) == Approx(1.0f));  // value and saturation kept
  CHECK(std::min({pixel[0], pixel[1], pixel[2]}) == Approx(0.0f).margin(1e-6));

  CHECK_THROWS_WITH(build({{"type", "ColorJitter"}, {"hue", 0.7}}), Catch::Contains("hue"));
  CHECK_THROWS_WITH(build({{"type", "ColorJitter"}, {"brightness", -1}}), Catch::Contains("brightness"));
}

TEST_CASE("Cutout fills mmcv's square: clipped at the bottom/right, moved in at the top/left",
          "[datasets]") {
  const int rows = 10, cols = 12, cut = 4;
  const cv::Mat source = ramp(rows, cols, 3);
  const cv::Mat before = source.clone();
  auto cutout = build(
      {{"type", "Cutout"}, {"shape", cut}, {"pad_val", {10, 20, 30}}, {"prob", 1.0}});
  const torch::Tensor fill = torch::tensor({10, 20, 30}, torch::kUInt8);
  bool clipped = false, moved_in = false;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed), replay(seed);
    cv::Mat image = source;
    cutout->apply(image, rng);
    // The box by hand from the same draws: prob, then the centre's y and x (mmcv.cutout).
    uniform01(replay);
    const double y0 = uniform01(replay) * rows, x0 = uniform01(replay) * cols;
    const int y1 = static_cast<int>(std::max(0.0, y0 - cut / 2.0));
    const int x1 = static_cast<int>(std::max(0.0, x0 - cut / 2.0));
    const int y2 = std::min(rows, y1 + cut), x2 = std::min(cols, x1 + cut);
    clipped = clipped || y2 - y1 < cut || x2 - x1 < cut;
    moved_in = moved_in || (y0 < cut / 2.0 && y2 - y1 == cut);
    torch::Tensor expected = to_tensor(source).clone();
    for (int y = 0; y < rows; ++y) {
      for (int x = 0; x < cols; ++x) {
        if (y >= y1 && y < y2 && x >= x1 && x < x2) expected[y][x] = fill;
      }
    }
    INFO("seed " << seed << ": rows [" << y1 << ", " << y2 << "), cols [" << x1 << ", " << x2
                 << ")");
    REQUIRE(torch::equal(to_tensor(image), expected));
  }
  CHECK(clipped);
  CHECK(moved_in);
  CHECK(cv::norm(source, before, cv::NORM_INF) == 0);  // the input was not written to

  // A square twice the image's size fills all of it; on float images pad_val is in uint8
  // units; prob 0 leaves the image alone (one draw all the same).
  std::mt19937_64 rng(5);
  cv::Mat gray;
  ramp(6, 6, 1).convertTo(gray, CV_32F, 1.0 / 255.0);
  cv::Mat image = gray;
  build({{"type", "Cutout"}, {"shape", {12, 13}}, {"pad_val", 255}, {"prob", 1.0}})
      ->apply(image, rng);
  CHECK(torch::equal(to_tensor(image), torch::ones({6, 6, 1})));
  image = source;
  build({{"type", "Cutout"}, {"shape", 3}, {"pad_val", 0}, {"prob", 0.0}})->apply(image, rng);
  CHECK(torch::equal(to_tensor(image), to_tensor(source)));
  auto two_values = build({{"type", "Cutout"}, {"shape", 3}, {"pad_val", {1, 2}}, {"prob", 1.0}});
  CHECK_THROWS_WITH(two_values->apply(image, rng), Catch::Contains("pad_val"));
  CHECK_THROWS_WITH(build({{"type", "Cutout"}, {"shape", 3}, {"prob", 2.0}}),
                    Catch::Contains("prob"));
  CHECK_THROWS_WITH(build({{"type", "Cutout"}}), Catch::Contains("shape"));
}
