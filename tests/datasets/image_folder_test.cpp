#include "datasets/image_folder.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "datasets/register_datasets.h"
#include "tests/datasets/temp_dir.h"

using namespace razor::data;
using razor::Args;
using razor::Json;
using razor::test::TempDir;

TEST_CASE("ImageFolder labels class folders in sorted order and decodes RGB", "[datasets]") {
  TempDir dir;
  // Classes created out of order; "cat" must be label 0.
  const std::vector<std::pair<std::string, int>> layout = {{"dog", 2}, {"cat", 3}, {"eel", 1}};
  for (const auto& [name, count] : layout) {
    std::filesystem::create_directories(dir / name);
    for (int i = 0; i < count; ++i) {
      // BGR on disk: blue = label-ish value, red = index.
      cv::Mat bgr(6, 5, CV_8UC3, cv::Scalar(10 + i, 20, 30 + name[0]));
      REQUIRE(cv::imwrite(dir / (name + "/img" + std::to_string(i) + ".png"), bgr));
    }
  }
  std::ofstream(dir / "cat/notes.txt") << "not an image";

  ImageFolder::Options options;
  options.data_root = dir.path();
  ImageFolder dataset(options);
  REQUIRE(dataset.size() == 6);
  CHECK(dataset.classes() == std::vector<std::string>{"cat", "dog", "eel"});
  CHECK(dataset.get(0).label == 0);
  CHECK(dataset.get(2).label == 0);
  CHECK(dataset.get(3).label == 1);
  CHECK(dataset.get(5).label == 2);
  CHECK(dataset.file(1) == dir / "cat/img1.png");

  const Sample sample = dataset.get(1);  // cat/img1.png
  REQUIRE(sample.image.type() == CV_8UC3);
  CHECK(sample.image.rows == 6);
  CHECK(sample.image.cols == 5);
  const auto pixel = sample.image.at<cv::Vec3b>(2, 3);
  CHECK(int(pixel[0]) == 30 + 'c');  // red first: converted from OpenCV's BGR
  CHECK(int(pixel[1]) == 20);
  CHECK(int(pixel[2]) == 11);

  razor::register_datasets();
  Json table = {{"type", "ImageFolder"}, {"data_root", dir.path()}, {"color", "grayscale"}};
  Args args = Args::of(table, "dataset");
  auto gray = build_dataset(args);
  CHECK(gray->size() == 6);
  CHECK(gray->get(0).image.type() == CV_8UC1);
}

TEST_CASE("ImageFolder reports a missing or empty root", "[datasets]") {
  TempDir dir;
  ImageFolder::Options options;
  options.data_root = dir / "absent";
  CHECK_THROWS_WITH(ImageFolder(options), Catch::Contains(dir / "absent"));
  options.data_root = dir.path();
  std::filesystem::create_directories(dir / "a");
  CHECK_THROWS_WITH(ImageFolder(options), Catch::Contains("no images"));
}

TEST_CASE("ImageNet (ImageFolder with ann_file) reads mmcls's annotation list", "[datasets]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "train/n01/sub");
  REQUIRE(cv::imwrite(dir / "train/n01/a.png", cv::Mat(4, 4, CV_8UC3, cv::Scalar(1, 2, 3))));
  REQUIRE(cv::imwrite(dir / "train/n01/sub/b.png", cv::Mat(3, 5, CV_8UC3, cv::Scalar(4, 5, 6))));
  std::filesystem::create_directories(dir / "meta");
  std::ofstream(dir / "meta/train.txt") << "n01/a.png 3\n\nn01/sub/b.png 0\n";

  razor::register_datasets();
  Json table = {{"type", "ImageNet"},
                {"data_root", dir.path()},
                {"ann_file", "meta/train.txt"},
                {"data_prefix", "train"}};
  Args args = Args::of(table, "dataset");
  auto dataset = build_dataset(args);
  REQUIRE(dataset->size() == 2);
  CHECK(dataset->get(0).label == 3);
  CHECK(dataset->get(1).label == 0);
  CHECK(dataset->get(1).image.cols == 5);
  CHECK(dataset->get(1).image.at<cv::Vec3b>(0, 0)[0] == 6);  // RGB
  CHECK(dataset->classes() == std::vector<std::string>{"0", "1", "2", "3"});

  std::ofstream(dir / "meta/bad.txt") << "n01/a.png 1\nn01/sub/b.png x\n";
  ImageFolder::Options options;
  options.data_root = dir.path();
  options.ann_file = "meta/bad.txt";
  CHECK_THROWS_WITH(ImageFolder(options), Catch::Contains("bad.txt:2") && Catch::Contains("b.png x"));
  options.ann_file = "meta/missing.txt";
  CHECK_THROWS_WITH(ImageFolder(options), Catch::Contains("missing.txt"));
}
