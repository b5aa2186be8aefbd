#include "datasets/mnist.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "datasets/idx.h"
#include "datasets/register_datasets.h"
#include "tests/datasets/temp_dir.h"

using namespace razor::data;
using razor::Args;
using razor::Json;
using razor::test::TempDir;

namespace {

bool have_fashion_mnist() {
  return std::filesystem::exists(std::string(FashionMNIST::kDefaultRoot) +
                                 "/train-images-idx3-ubyte.gz");
}

}  // namespace

TEST_CASE("FashionMNIST reads both splits with known labels and pixel statistics", "[datasets]") {
  // scripts/setup installs dataset-fashion-mnist: without it this test is not skipped.
  INFO("Fashion-MNIST is not in " << FashionMNIST::kDefaultRoot
                                  << ": install the Debian package dataset-fashion-mnist");
  REQUIRE(have_fashion_mnist());
  FashionMNIST train(FashionMNIST::kDefaultRoot, "train");
  FashionMNIST test(FashionMNIST::kDefaultRoot, "test");
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.num_classes() == 10);
  CHECK(train.classes()[9] == "Ankle boot");
  CHECK(train.get(0).label == 9);
  CHECK(test.get(0).label == 9);

  const Sample sample = train.get(0);
  CHECK(sample.image.rows == 28);
  CHECK(sample.image.cols == 28);
  CHECK(sample.image.type() == CV_8UC1);

  auto pixels = torch::from_blob(const_cast<uint8_t*>(train.pixels().data()),
                                 {static_cast<int64_t>(train.pixels().size())}, torch::kUInt8)
                    .to(torch::kFloat64)
                    .div(255.0);
  CHECK(pixels.mean().item<double>() == Approx(0.2860).margin(1e-3));
  CHECK(pixels.std().item<double>() == Approx(0.3530).margin(1e-3));

  // The view serves the decoded array itself.
  CHECK(sample.image.data == train.pixels().data());
  CHECK(train.get(59999).image.data == train.pixels().data() + 59999 * 784);
}

TEST_CASE("A missing Fashion-MNIST file names the path and the Debian package", "[datasets]") {
  TempDir dir;
  const std::string root = dir / "nowhere";
  try {
    FashionMNIST dataset(root, "train");
    FAIL("expected an error");
  } catch (const razor::Error& e) {
    CHECK(e.kind() == razor::Error::Kind::Config);
    CHECK_THAT(e.what(), Catch::Contains(root + "/train-images-idx3-ubyte.gz") &&
                             Catch::Contains("dataset-fashion-mnist"));
  }
  // Through the registry, the error also names the config key path.
  razor::register_datasets();
  Json table = {{"type", "FashionMNIST"}, {"data_root", root}, {"split", "test"}};
  Args args = Args::of(table, "train_dataloader.dataset");
  CHECK_THROWS_WITH(build_dataset(args), Catch::Contains("train_dataloader.dataset") &&
                                             Catch::Contains(root + "/t10k-images-idx3-ubyte.gz") &&
                                             Catch::Contains("dataset-fashion-mnist"));
}

TEST_CASE("IDX files round-trip, gzip-compressed or not", "[datasets]") {
  TempDir dir;
  const int64_t n = 5, h = 3, w = 4;
  std::vector<uint8_t> pixels(n * h * w);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7 % 256);
  const std::vector<uint8_t> labels = {3, 1, 4, 1, 5};

  razor::test::write_gzip(dir / "train-images-idx3-ubyte.gz", encode_idx({n, h, w}, pixels));
  razor::test::write_gzip(dir / "train-labels-idx1-ubyte.gz", encode_idx({n}, labels));
  {  // the test split uncompressed: found without the .gz suffix
    auto bytes =
        encode_idx({2, h, w}, std::vector<uint8_t>(pixels.begin(), pixels.begin() + 2 * h * w));
    std::ofstream(dir / "t10k-images-idx3-ubyte", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    auto label_bytes = encode_idx({2}, {7, 8});
    std::ofstream(dir / "t10k-labels-idx1-ubyte", std::ios::binary)
        .write(reinterpret_cast<const char*>(label_bytes.data()), label_bytes.size());
  }

  IdxArray array = read_idx(dir / "train-images-idx3-ubyte.gz");
  CHECK(array.shape == std::vector<int64_t>{n, h, w});
  CHECK(array.data == pixels);

  MNIST train(dir.path(), "train");
  REQUIRE(train.size() == n);
  CHECK(train.height() == h);
  CHECK(train.width() == w);
  for (int64_t i = 0; i < n; ++i) {
    const Sample sample = train.get(i);
    CHECK(sample.label == labels[i]);
    REQUIRE(sample.image.rows == h);
    REQUIRE(sample.image.cols == w);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        CHECK(sample.image.at<uint8_t>(y, x) == pixels[(i * h + y) * w + x]);
      }
    }
  }
  MNIST test(dir.path(), "test");
  CHECK(test.size() == 2);
  CHECK(test.get(1).label == 8);
  CHECK_THROWS_AS(train.get(n), std::out_of_range);
}

TEST_CASE("Corrupt IDX files are reported with their name", "[datasets]") {
  CHECK_THROWS_WITH(parse_idx({1, 2, 3, 4}, "bad.idx"),
                    Catch::Contains("bad.idx") && Catch::Contains("magic"));
  CHECK_THROWS_WITH(parse_idx({0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0}, "float.idx"),
                    Catch::Contains("float.idx") && Catch::Contains("0xd"));
  auto bytes = encode_idx({4}, {1, 2, 3});  // announces 4, holds 3
  CHECK_THROWS_WITH(parse_idx(bytes, "short.idx"),
                    Catch::Contains("short.idx") && Catch::Contains("4 elements"));
  TempDir dir;
  razor::test::write_gzip(dir / "train-images-idx3-ubyte.gz",
                          encode_idx({2, 2, 2}, std::vector<uint8_t>(8)));
  razor::test::write_gzip(dir / "train-labels-idx1-ubyte.gz", encode_idx({3}, {0, 1, 2}));
  CHECK_THROWS_WITH(MNIST(dir.path(), "train"),
                    Catch::Contains("2 images") && Catch::Contains("3 labels"));
  CHECK_THROWS_WITH(MNIST(dir.path(), "val"), Catch::Contains("split"));
}
