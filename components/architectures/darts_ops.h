#pragma once
// The candidate ops of the DARTS search space (MMRazor's DartsZero, DartsSkipConnect,
// DartsPoolBN, DartsSepConv, DartsDilConv), with MMRazor's child names so that state dicts
// read "conv1.1.weight", "conv2.3.running_mean" as there. DARTS's cell preprocessing
// (FactorizedReduce, StandardConv) lives here too: the skip connection of a reduction edge
// is a FactorizedReduce.
#include <cstdint>
#include <memory>
#include <string>

#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "components/nn/multi_input.h"
#include "components/nn/sequential.h"

namespace razor {

struct DartsOpOptions {
  DartsOpOptions(int64_t in_channels, int64_t out_channels, int64_t stride = 1)
      : in_channels(in_channels), out_channels(out_channels), stride(stride) {}
  int64_t in_channels;
  int64_t out_channels;
  /// 1, or 2 on the edges from a reduction cell's inputs.
  int64_t stride = 1;
  /// The BatchNorms' affine (MMRazor's norm_cfg.affine); DARTS's paper searches without.
  bool affine = true;
  /// Probability of dropping a sample's output in training (mmcv's DropPath: MMRazor's
  /// `use_drop_path = True` means 0.1); 0 = no drop path.
  double drop_path_prob = 0.0;

  // clang-format off
  DartsOpOptions& with_affine(bool v) { affine = v; return *this; }
  DartsOpOptions& with_drop_path_prob(double v) { drop_path_prob = v; return *this; }
  // clang-format on
};

/// mmcv's DropPath: in training, each sample's output is zeroed with probability p and the
/// others scaled by 1 / (1 - p); the identity in eval. The mask comes from LibTorch's CPU
/// generator whatever the device, so that DARTS's unrolled step can replay it.
class DropPath : public nn::Module {
 public:
  explicit DropPath(double drop_prob = 0.1);
  double drop_prob() const { return drop_prob_; }
  const nn::OpDescription* description() const override;

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  double drop_prob_;
};

/// Zeros of the output's shape (the input subsampled by `stride`): an edge that is absent.
class DartsZero : public nn::Module {
 public:
  explicit DartsZero(const DartsOpOptions& options);

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t stride_;
};

/// ReLU, two 1x1 stride-2 convs (the second on the input shifted by one pixel), concatenated,
/// then BN: halves the resolution without losing every other pixel. Children relu, conv1,
/// conv2, bn.
class FactorizedReduce : public nn::Module {
 public:
  FactorizedReduce(int64_t in_channels, int64_t out_channels, bool affine = true);

 protected:
  FactorizedReduce(const std::string& type_name, int64_t in_channels, int64_t out_channels,
                   bool affine);
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Module> relu_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::Concat> concat_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
};

/// DARTS's ReLU-conv-BN ("net": Sequential of the three), the cell's input preprocessing.
class StandardConv : public nn::Module {
 public:
  StandardConv(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
               int64_t padding, bool affine = true);

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<nn::Sequential> net_;
};

/// The identity with stride 1; a FactorizedReduce (then drop path) with stride 2.
class DartsSkipConnect : public nn::Module {
 public:
  explicit DartsSkipConnect(const DartsOpOptions& options);

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::shared_ptr<FactorizedReduce> reduce_;  // stride 2 only
  std::shared_ptr<DropPath> drop_path_;
};

/// 3x3 max or average pooling (padding 1; the average without the padding) then BN.
class DartsPoolBN : public nn::Module {
 public:
  /// `pool_type` is "max" or "avg".
  DartsPoolBN(const DartsOpOptions& options, const std::string& pool_type,
              int64_t kernel_size = 3);
  const std::string& pool_type() const { return pool_type_; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  std::string pool_type_;
  std::shared_ptr<nn::Module> pool_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
  std::shared_ptr<DropPath> drop_path_;
};

/// Separable convolution, twice: ReLU, k x k depthwise conv (the first with the stride),
/// 1x1 conv, BN. Children conv1 and conv2 (Sequentials), kernel 3 or 5.
class DartsSepConv : public nn::Module {
 public:
  DartsSepConv(const DartsOpOptions& options, int64_t kernel_size);
  int64_t kernel_size() const { return kernel_size_; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t kernel_size_;
  std::shared_ptr<nn::Sequential> conv1_, conv2_;
  std::shared_ptr<DropPath> drop_path_;
};

/// Dilated separable convolution once: ReLU, k x k depthwise conv with dilation 2, 1x1 conv,
/// BN. Child conv1 (a Sequential), kernel 3 or 5.
class DartsDilConv : public nn::Module {
 public:
  DartsDilConv(const DartsOpOptions& options, int64_t kernel_size);
  int64_t kernel_size() const { return kernel_size_; }

 protected:
  torch::Tensor forward(const torch::Tensor& input) override;

 private:
  int64_t kernel_size_;
  std::shared_ptr<nn::Sequential> conv1_;
  std::shared_ptr<DropPath> drop_path_;
};

}  // namespace razor
