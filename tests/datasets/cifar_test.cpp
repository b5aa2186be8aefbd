#include "datasets/cifar.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "datasets/register_datasets.h"
#include "tests/datasets/temp_dir.h"

using namespace razor::data;
using razor::test::TempDir;

namespace {

// Record r of a file: label (r * 3 + salt) % classes, pixel k = (k * 13 + r + salt) % 251.
std::vector<uint8_t> chw_pixels(int record, int salt) {
  std::vector<uint8_t> pixels(3 * 32 * 32);
  for (size_t k = 0; k < pixels.size(); ++k)
    pixels[k] = static_cast<uint8_t>((k * 13 + record + salt) % 251);
  return pixels;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

void check_hwc(const cv::Mat& image, const std::vector<uint8_t>& chw) {
  REQUIRE(image.type() == CV_8UC3);
  REQUIRE(image.rows == 32);
  REQUIRE(image.cols == 32);
  auto hwc = razor::test::to_tensor(image);
  auto expected = torch::from_blob(const_cast<uint8_t*>(chw.data()), {3, 32, 32}, torch::kUInt8)
                      .permute({1, 2, 0});
  CHECK(torch::equal(hwc, expected));
}

}  // namespace

TEST_CASE("CIFAR10 reads binary batches as HWC RGB images", "[datasets]") {
  TempDir dir;
  for (int b = 1; b <= 5; ++b) {
    std::vector<uint8_t> bytes;
    for (int r = 0; r < 2; ++r) {
      auto record = encode_cifar_record({static_cast<uint8_t>((r * 3 + b) % 10)}, chw_pixels(r, b));
      bytes.insert(bytes.end(), record.begin(), record.end());
    }
    write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"), bytes);
  }
  write_file(dir / "test_batch.bin", encode_cifar_record({7}, chw_pixels(0, 99)));

  CIFAR10 train(dir.path(), "train");
  REQUIRE(train.size() == 10);
  CHECK(train.classes()[0] == "airplane");
  // Sample 2 * (b - 1) + r comes from batch b, record r.
  CHECK(train.get(3).label == (1 * 3 + 2) % 10);
  check_hwc(train.get(3).image, chw_pixels(1, 2));
  check_hwc(train.get(8).image, chw_pixels(0, 5));

  CIFAR10 test(dir.path(), "test");
  REQUIRE(test.size() == 1);
  CHECK(test.get(0).label == 7);
  check_hwc(test.get(0).image, chw_pixels(0, 99));
}

TEST_CASE("CIFAR100 reads fine or coarse labels and reports bad files", "[datasets]") {
  TempDir dir;
  std::vector<uint8_t> bytes;
  for (int r = 0; r < 3; ++r) {
    auto record = encode_cifar_record({static_cast<uint8_t>(r), static_cast<uint8_t>(50 + r)},
                                      chw_pixels(r, 0));
    bytes.insert(bytes.end(), record.begin(), record.end());
  }
  write_file(dir / "train.bin", bytes);
  CIFAR100 fine(dir.path(), "train");
  REQUIRE(fine.size() == 3);
  CHECK(fine.num_classes() == 100);
  CHECK(fine.get(2).label == 52);
  check_hwc(fine.get(2).image, chw_pixels(2, 0));
  CIFAR100 coarse(dir.path(), "train", false);
  CHECK(coarse.num_classes() == 20);
  CHECK(coarse.get(2).label == 2);

  bytes.pop_back();
  write_file(dir / "test.bin", bytes);
  CHECK_THROWS_WITH(CIFAR100(dir.path(), "test"),
                    Catch::Contains(dir / "test.bin") && Catch::Contains("3074"));
  TempDir empty;
  CHECK_THROWS_WITH(CIFAR10(empty.path(), "test"), Catch::Contains(empty / "test_batch.bin"));
}
