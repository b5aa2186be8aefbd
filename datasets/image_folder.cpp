#include "datasets/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace razor::data {

namespace fs = std::filesystem;

ImageFolder::ImageFolder(Options options) : options_(std::move(options)) {
  std::error_code error;
  RAZOR_CHECK(fs::is_directory(options_.data_root, error), "data_root: folder ", options_.data_root,
              " not found");
  std::vector<fs::path> class_dirs;
  for (const auto& entry : fs::directory_iterator(options_.data_root)) {
    if (entry.is_directory()) class_dirs.push_back(entry.path());
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  for (const auto& dir : class_dirs) {
    std::vector<std::string> images;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      std::string ext = entry.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (std::find(options_.extensions.begin(), options_.extensions.end(), ext) !=
          options_.extensions.end()) {
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

Sample ImageFolder::get(int64_t index) const {
  check_index(index);
  const std::string& path = files_[static_cast<size_t>(index)];
  cv::Mat image = cv::imread(path, options_.color ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE);
  RAZOR_RUNTIME_CHECK(!image.empty(), "cannot decode image ", path);
  if (options_.color) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
  return {image, labels_[static_cast<size_t>(index)]};
}

}  // namespace razor::data
