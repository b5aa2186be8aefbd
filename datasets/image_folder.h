#pragma once
// Images in class folders: data_root/<class name>/<image>, classes sorted by name and given
// labels 0, 1, ... in that order (torchvision's ImageFolder). With an `ann_file` (mmcls's
// ImageNet layout), the images and labels are instead the lines "<relative path> <label>" of
// that file, the paths relative to data_root/data_prefix. Images are decoded by OpenCV on
// each get(), so the set may be larger than memory.
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace razor::data {

class ImageFolder : public Dataset {
 public:
  struct Options {
    /// The folder holding one sub-folder per class.
    std::string data_root;
    /// Optional: a list of "<path> <label>" lines (relative to data_root unless absolute).
    std::string ann_file;
    /// With ann_file: the folder under data_root that the listed paths are relative to.
    std::string data_prefix;
    /// Decode as 3-channel RGB (true) or 1-channel grayscale (false).
    bool color = true;
    /// File extensions to take (lower case, with the dot); others are ignored.
    std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".bmp"};
  };

  explicit ImageFolder(Options options);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  Sample get(int64_t index) const override;
  std::vector<std::string> classes() const override { return classes_; }

  const std::string& file(int64_t index) const { return files_.at(static_cast<size_t>(index)); }

 private:
  Options options_;
  std::vector<std::string> classes_;
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;

  void scan_class_folders();
  void read_annotations();
};

}  // namespace razor::data
