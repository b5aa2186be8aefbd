#pragma once
// Small nets of razor ops for the channel tests, and the analyser run on one.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "components/channel/channel_analyzer.h"
#include "components/nn/nn.h"

namespace razor::test {

/// A net of razor ops with a forward given as a function of its children.
struct OpNet : nn::Module {
  OpNet() : nn::Module("Net") {}
  template <class Op>
  std::shared_ptr<Op> add_op(const std::string& name, std::shared_ptr<Op> op) {
    return register_module(name, std::move(op));
  }
  std::function<torch::Tensor(const torch::Tensor&)> body;
  torch::Tensor forward(const torch::Tensor& x) override { return body(x); }
};

/// A "same"-padded conv with a bias.
inline std::shared_ptr<nn::Conv2d> same_conv(int64_t in, int64_t out, int64_t k = 1,
                                             int64_t groups = 1) {
  return std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions(in, out, k).with_padding(k / 2).with_groups(groups));
}

/// ChannelAnalyzer on a demo input of `shape`.
inline channel::ChannelAnalysis analyze_units(
    torch::nn::Module& net, std::vector<int64_t> shape,
    const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  channel::ChannelAnalyzerOptions options;
  options.demo_input = std::move(shape);
  return channel::ChannelAnalyzer(options).analyze(net, forward);
}

}  // namespace razor::test
