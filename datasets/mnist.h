#pragma once
// MNIST and Fashion-MNIST from their IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte,
// gzip-compressed or not). The whole split is decoded once into memory (N x 28 x 28 uint8);
// samples are 28 x 28 x 1 uint8 views of it.
#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace razor::data {

class MNIST : public Dataset {
 public:
  /// `split` is "train" or "test"; `data_root` holds the four IDX files.
  MNIST(const std::string& data_root, const std::string& split);

  int64_t size() const override { return count_; }
  Sample get(int64_t index) const override;
  std::vector<std::string> classes() const override;

  int64_t height() const { return rows_; }
  int64_t width() const { return cols_; }
  /// The decoded split: N * H * W pixels, then N labels.
  const std::vector<uint8_t>& pixels() const { return images_; }
  const std::vector<uint8_t>& labels() const { return labels_; }

 protected:
  /// For variants in the same format: their class names and what to tell the user when a
  /// file is missing.
  MNIST(const std::string& data_root, const std::string& split, std::vector<std::string> classes,
        const std::string& missing_hint);

 private:
  void load(const std::string& data_root, const std::string& split, const std::string& hint);

  std::vector<std::string> classes_;
  std::vector<uint8_t> images_;
  std::vector<uint8_t> labels_;
  int64_t count_ = 0, rows_ = 0, cols_ = 0;
};

/// Zalando's Fashion-MNIST; `data_root` defaults to where Debian's dataset-fashion-mnist
/// package installs it.
class FashionMNIST : public MNIST {
 public:
  static constexpr const char* kDefaultRoot = "/usr/share/datasets/fashion-mnist";
  FashionMNIST(const std::string& data_root, const std::string& split);
};

}  // namespace razor::data
