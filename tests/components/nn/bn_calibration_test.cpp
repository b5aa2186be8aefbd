// BN re-estimation: the running statistics become the sample-weighted mean of the per-batch
// means and unbiased variances, computed here from the data directly.
#include "components/nn/bn_calibration.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"

using namespace razor;

namespace {

/// conv -> BN -> BN (the second sees the first one's output).
struct Net : Model {
  Net() {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 1)));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(4));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(4));
  }
  torch::Tensor forward_tensor(const torch::Tensor& x) override { return (*bn2)((*bn1)((*conv)(x))); }
  LossMap loss(const Batch&) override { return {}; }
  torch::Tensor predict(const Batch& b) override { return forward_tensor(b.inputs).mean({2, 3}); }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
};

/// Fixed batches of one tensor.
class Loader : public DataLoader {
 public:
  Loader(torch::Tensor data, int64_t batch) : data_(std::move(data)), batch_(batch) {}
  int64_t size() const override { return (data_.size(0) + batch_ - 1) / batch_; }
  int64_t dataset_size() const override { return data_.size(0); }
  int64_t batch_size() const override { return batch_; }
  void set_epoch(int64_t) override {}
  void start(int64_t skip) override { next_ = skip * batch_; }
  std::optional<Batch> next() override {
    if (next_ >= data_.size(0)) return std::nullopt;
    const int64_t n = std::min(batch_, data_.size(0) - next_);
    Batch b;
    b.inputs = data_.narrow(0, next_, n);
    b.targets = torch::zeros({n}, torch::kLong);
    next_ += n;
    return b;
  }

 private:
  torch::Tensor data_;
  int64_t batch_, next_ = 0;
};

}  // namespace

TEST_CASE("BN calibration sets the sample-weighted per-batch mean and variance", "[bn_calibration]") {
  torch::manual_seed(3);
  Net net;
  net.eval();
  // N(1, 100) data as MMRazor's test; 100 samples in batches of 32, calibrated on 90 of them.
  const torch::Tensor data = torch::randn({100, 3, 5, 5}) * 10 + 1;
  Loader loader(data, 32);
  const auto report = calibrate_bn_statistics(net, loader, 90, [](const Batch& b) { return b; });
  CHECK(report.samples == 90);
  CHECK(report.norms == 2);
  CHECK_FALSE(net.is_training());  // the mode is restored

  // Expected: batches of 32, 32, 26 (the last one cut), each with its own statistics.
  torch::NoGradGuard no_grad;
  torch::Tensor mean = torch::zeros({4}, torch::kDouble), var = torch::zeros({4}, torch::kDouble);
  const torch::Tensor features = (*net.conv)(data.narrow(0, 0, 90)).to(torch::kDouble);
  for (auto [begin, n] : std::vector<std::pair<int64_t, int64_t>>{{0, 32}, {32, 32}, {64, 26}}) {
    const torch::Tensor x = features.narrow(0, begin, n);
    mean += x.mean({0, 2, 3}) * double(n);
    var += x.var({0, 2, 3}, true) * double(n);
  }
  CHECK(torch::allclose(net.bn1->running_mean.to(torch::kDouble), mean / 90, 1e-5, 1e-5));
  CHECK(torch::allclose(net.bn1->running_var.to(torch::kDouble), var / 90, 1e-5, 1e-5));
  // Close to the whole-set statistics (not equal: per-batch variances are averaged).
  CHECK(torch::allclose(net.bn1->running_mean.to(torch::kDouble), features.mean({0, 2, 3}), 1e-4, 1e-3));
  CHECK(torch::allclose(net.bn1->running_var.to(torch::kDouble), features.var({0, 2, 3}, true), 0.05));
  // The second BN saw the first one's training-mode output: mean about 0, variance about 1.
  CHECK(net.bn2->running_mean.abs().max().item<double>() < 1e-5);
  CHECK(net.bn2->running_var.sub(1).abs().max().item<double>() < 0.05);
  CHECK_THROWS_WITH(calibrate_bn_statistics(net, loader, 0, [](const Batch& b) { return b; }),
                    Catch::Contains("positive number of samples"));
}

TEST_CASE("BN calibration on cached batches equals calibration from the loader", "[bn_calibration]") {
  torch::manual_seed(4);
  Net net;
  const torch::Tensor data = torch::randn({100, 3, 5, 5}) * 3 - 2;
  Loader loader(data, 32);
  calibrate_bn_statistics(net, loader, 90, [](const Batch& b) { return b; });
  const torch::Tensor mean = net.bn1->running_mean.clone(), var = net.bn2->running_var.clone();

  net.bn1->running_mean.fill_(7);
  net.bn2->running_var.fill_(7);
  std::vector<Batch> batches;
  loader.start(0);
  while (auto b = loader.next()) batches.push_back(*b);
  const BNCalibrationReport report = calibrate_bn_statistics(net, batches, 90);
  CHECK(report.samples == 90);
  CHECK(report.norms == 2);
  CHECK(torch::equal(net.bn1->running_mean, mean));
  CHECK(torch::equal(net.bn2->running_var, var));
  CHECK(first_samples(batches[2], 26).size() == 26);
}
