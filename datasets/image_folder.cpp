#include "datasets/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace razor::data {

namespace fs = std::filesystem;

namespace {

bool has_extension(const fs::path& path, const std::vector<std::string>& extensions) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::find(extensions.begin(), extensions.end(), ext) != extensions.end();
}

}  // namespace

ImageFolder::ImageFolder(Options options) : options_(std::move(options)) {
  std::error_code error;
  RAZOR_CHECK(fs::is_directory(options_.data_root, error), "data_root: folder ", options_.data_root,
              " not found");
  if (options_.ann_file.empty()) {
    scan_class_folders();
  } else {
    read_annotations();
  }
}

void ImageFolder::scan_class_folders() {
  std::vector<fs::path> class_dirs;
  for (const auto& entry : fs::directory_iterator(options_.data_root)) {
    if (entry.is_directory()) class_dirs.push_back(entry.path());
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  for (const auto& dir : class_dirs) {
    std::vector<std::string> images;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      if (entry.is_regular_file() && has_extension(entry.path(), options_.extensions)) {
        images.push_back(entry.path().string());
      }
    }
    std::sort(images.begin(), images.end());
    const auto label = static_cast<int64_t>(classes_.size());
    classes_.push_back(dir.filename().string());
    for (auto& image : images) {
      files_.push_back(std::move(image));
      labels_.push_back(label);
    }
  }
  RAZOR_CHECK(!files_.empty(), "data_root: no images (", join(options_.extensions, ", "),
              ") in the class folders of ", options_.data_root);
}

void ImageFolder::read_annotations() {
  const fs::path root(options_.data_root);
  const fs::path ann = fs::path(options_.ann_file).is_absolute() ? fs::path(options_.ann_file)
                                                                  : root / options_.ann_file;
  std::ifstream in(ann);
  RAZOR_CHECK(in, "ann_file: cannot read ", ann.string());
  const fs::path prefix = root / options_.data_prefix;
  int64_t max_label = -1;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string path;
    int64_t label = -1;
    if (!(fields >> path)) continue;  // blank line
    std::string rest;
    RAZOR_CHECK((fields >> label) && label >= 0 && !(fields >> rest), "ann_file: ", ann.string(),
                ":", number, ": expected \"<image path> <label >= 0>\", got \"", line, "\"");
    files_.push_back((prefix / path).string());
    labels_.push_back(label);
    max_label = std::max(max_label, label);
  }
  RAZOR_CHECK(!files_.empty(), "ann_file: ", ann.string(), " lists no images");
  // Classes are the label numbers: the file names no categories.
  for (int64_t c = 0; c <= max_label; ++c) classes_.push_back(std::to_string(c));
}

Sample ImageFolder::get(int64_t index) const {
  check_index(index);
  const std::string& path = files_[static_cast<size_t>(index)];
  cv::Mat image = cv::imread(path, options_.color ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE);
  RAZOR_RUNTIME_CHECK(!image.empty(), "cannot decode image ", path);
  if (options_.color) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
  return {image, labels_[static_cast<size_t>(index)]};
}

}  // namespace razor::data
