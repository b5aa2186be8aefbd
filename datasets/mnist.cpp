#include "datasets/mnist.h"

#include "datasets/binary_file.h"
#include "datasets/idx.h"

namespace razor::data {

MNIST::MNIST(const std::string& data_root, const std::string& split)
    : MNIST(data_root, split, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, "") {}

MNIST::MNIST(const std::string& data_root, const std::string& split,
             std::vector<std::string> classes, const std::string& missing_hint)
    : classes_(std::move(classes)) {
  load(data_root, split, missing_hint);
}

void MNIST::load(const std::string& data_root, const std::string& split, const std::string& hint) {
  RAZOR_CHECK(split == "train" || split == "test", "split: expected \"train\" or \"test\", got \"",
              split, "\"");
  const std::string prefix = data_root + "/" + (split == "train" ? "train" : "t10k");
  const std::string images_path = find_data_file(prefix + "-images-idx3-ubyte.gz");
  const std::string labels_path = find_data_file(prefix + "-labels-idx1-ubyte.gz");

  IdxArray images = read_idx(images_path, hint);
  IdxArray labels = read_idx(labels_path, hint);
  RAZOR_RUNTIME_CHECK(images.shape.size() == 3, images_path, ": expected a 3-d image array, got ",
                      images.shape.size(), " dimensions");
  RAZOR_RUNTIME_CHECK(labels.shape.size() == 1, labels_path, ": expected a 1-d label array, got ",
                      labels.shape.size(), " dimensions");
  RAZOR_RUNTIME_CHECK(images.shape[0] == labels.shape[0], images_path, " has ", images.shape[0],
                      " images but ", labels_path, " has ", labels.shape[0], " labels");
  for (size_t i = 0; i < labels.data.size(); ++i) {
    RAZOR_RUNTIME_CHECK(labels.data[i] < classes_.size(), labels_path, ": label ",
                        int(labels.data[i]), " of sample ", i, " is not a class index");
  }
  count_ = images.shape[0];
  rows_ = images.shape[1];
  cols_ = images.shape[2];
  images_ = std::move(images.data);
  labels_ = std::move(labels.data);
}

Sample MNIST::get(int64_t index) const {
  check_index(index);
  // A view: the loader copies it into the batch, and transforms never write into it.
  auto* pixels = const_cast<uint8_t*>(images_.data()) + index * rows_ * cols_;
  return {cv::Mat(static_cast<int>(rows_), static_cast<int>(cols_), CV_8UC1, pixels),
          labels_[static_cast<size_t>(index)]};
}

std::vector<std::string> MNIST::classes() const { return classes_; }

FashionMNIST::FashionMNIST(const std::string& data_root, const std::string& split)
    : MNIST(data_root, split,
            {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
             "Bag", "Ankle boot"},
            data_root == kDefaultRoot
                ? "; install the Debian package dataset-fashion-mnist "
                  "(apt-get install dataset-fashion-mnist)"
                : "; set data_root to the folder holding the Fashion-MNIST IDX files, or "
                  "install the Debian package dataset-fashion-mnist for " +
                      std::string(kDefaultRoot)) {}

}  // namespace razor::data
