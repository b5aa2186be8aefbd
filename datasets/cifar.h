#pragma once
// CIFAR-10 and CIFAR-100 in their binary versions ("cifar-10-batches-bin",
// "cifar-100-binary"): records of label byte(s) then 3 x 32 x 32 pixels as R, G, B planes.
// The split is decoded once into memory as N x 32 x 32 x 3 (HWC, RGB) uint8; samples view it.
#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace razor::data {

class CIFAR : public Dataset {
 public:
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Sample get(int64_t index) const override;
  std::vector<std::string> classes() const override { return classes_; }

 protected:
  /// Reads `files` of records with `label_bytes` label bytes each, of which byte
  /// `label_offset` is the label.
  void load(const std::vector<std::string>& files, int label_bytes, int label_offset,
            int64_t num_classes);

  std::vector<std::string> classes_;

 private:
  std::vector<uint8_t> images_;  // N x 32 x 32 x 3
  std::vector<uint8_t> labels_;
};

/// `data_root` holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin.
class CIFAR10 : public CIFAR {
 public:
  CIFAR10(const std::string& data_root, const std::string& split);
};

/// `data_root` holds train.bin and test.bin; `fine` selects the 100 fine labels (else the
/// 20 coarse ones). Class names come from fine_label_names.txt / coarse_label_names.txt when
/// present, else they are the label numbers.
class CIFAR100 : public CIFAR {
 public:
  CIFAR100(const std::string& data_root, const std::string& split, bool fine = true);
};

/// One CIFAR binary record (for tests and tools): labels then CHW pixels.
std::vector<uint8_t> encode_cifar_record(const std::vector<uint8_t>& labels,
                                         const std::vector<uint8_t>& chw_pixels);

}  // namespace razor::data
