// The SPOS ShuffleNetV2 supernet: its blocks against a plain LibTorch computation, its module
// names, and the FLOPs and params of its subnets against a closed-form count.
#include "components/architectures/searchable_shufflenet_v2.h"

#include <torch/torch.h>

#include <array>

#include <catch2/catch.hpp>

#include "components/architectures/channel_interleave.h"
#include "components/architectures/shufflenet_ops.h"
#include "components/estimators/resource_estimator.h"
#include "components/mutables/mutable_op.h"
#include "components/mutables/register_mutables.h"
#include "components/mutators/nas_mutator.h"
#include "components/nn/batch_norm.h"
#include "components/nn/conv.h"
#include "components/nn/conv_module.h"
#include "tests/components/architectures/build.h"

using namespace razor;

namespace {

/// conv -> BN (eval) -> ReLU of a ConvModule, written with LibTorch's functions.
torch::Tensor plain(nn::ConvModule& m, const torch::Tensor& x) {
  const auto& o = m.options();
  torch::Tensor y = torch::conv2d(x, m.conv().weight, {}, o.stride, o.padding, o.dilation, o.groups);
  nn::BatchNorm2d& bn = *m.bn();
  y = torch::batch_norm(y, bn.weight, bn.bias, bn.running_mean, bn.running_var, false, 0.1, bn.eps(), false);
  return m.activate() ? torch::relu(y) : y;
}

torch::Tensor plain(nn::Sequential& seq, torch::Tensor x) {
  for (size_t i = 0; i < seq.size(); ++i) x = plain(seq.at<nn::ConvModule>(i), x);
  return x;
}

nn::Sequential& child_seq(nn::Module& m, const std::string& name) {
  return *std::dynamic_pointer_cast<nn::Sequential>(m.named_children()[name]);
}

void randomise_bn(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (const auto& item : m.named_modules("", false)) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(item.value().get())) {
      bn->running_mean.uniform_(-0.5, 0.5);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.2, 0.2);
    }
  }
}

Json supernet_table(const Json& arch_setting, int64_t last) {
  Json candidates = {{"shuffle_3x3", {{"type", "ShuffleBlock"}, {"kernel_size", 3}}},
                     {"shuffle_5x5", {{"type", "ShuffleBlock"}, {"kernel_size", 5}}},
                     {"shuffle_7x7", {{"type", "ShuffleBlock"}, {"kernel_size", 7}}},
                     {"shuffle_xception", {{"type", "ShuffleXception"}}}};
  Json backbone = {{"type", "SearchableShuffleNetV2"}, {"in_channels", 1}, {"stem_stride", 1},
                   {"last_channels", last}, {"arch_setting", arch_setting},
                   {"mutable_cfg", {{"type", "OneShotMutableOP"}, {"candidates", candidates}}}};
  return test::classifier(backbone, last);
}

// The closed form, written from the architecture (mmcv's counting rules): FLOPs and params
// of a conv, a BN (2 per element) and a ReLU (1 per element) at spatial size h x h.
struct Count {
  double flops = 0, params = 0;
  void conv(int64_t in, int64_t out, int64_t k, int64_t groups, int64_t h) {
    flops += double(k * k * in * (out / groups) * h * h);
    params += double(k * k * (in / groups) * out);
  }
  void bn(int64_t c, int64_t h) {
    flops += double(2 * c * h * h);
    params += double(2 * c);
  }
  void relu(int64_t c, int64_t h) { flops += double(c * h * h); }
};

/// One block ("3", "5", "7" or "x"), returns the output size.
int64_t count_block(Count& n, int64_t in, int64_t out, int64_t stride, const std::string& kind, int64_t h) {
  const int64_t mid = out / 2, ho = stride == 2 ? (h - 1) / 2 + 1 : h;
  if (stride == 2) {
    const int64_t k = kind == "x" ? 3 : std::stoi(kind);
    n.conv(in, in, k, in, ho), n.bn(in, ho), n.conv(in, mid, 1, 1, ho), n.bn(mid, ho), n.relu(mid, ho);
  }
  const int64_t main_in = stride == 2 ? in : mid;
  if (kind == "x") {
    n.conv(main_in, main_in, 3, main_in, ho), n.bn(main_in, ho);
    n.conv(main_in, mid, 1, 1, ho), n.bn(mid, ho), n.relu(mid, ho);
    for (int r = 0; r < 2; ++r) {
      n.conv(mid, mid, 3, mid, ho), n.bn(mid, ho), n.conv(mid, mid, 1, 1, ho), n.bn(mid, ho), n.relu(mid, ho);
    }
  } else {
    const int64_t k = std::stoi(kind);
    n.conv(main_in, mid, 1, 1, h), n.bn(mid, h), n.relu(mid, h);
    n.conv(mid, mid, k, mid, ho), n.bn(mid, ho), n.conv(mid, mid, 1, 1, ho), n.bn(mid, ho), n.relu(mid, ho);
  }
  return ho;
}

Count closed_form(const std::vector<std::string>& kinds) {
  Count n;
  n.conv(1, 16, 3, 1, 28), n.bn(16, 28), n.relu(16, 28);
  int64_t h = 28, in = 16;
  size_t i = 0;
  for (auto [width, blocks] : std::vector<std::pair<int64_t, int64_t>>{{64, 2}, {128, 2}, {256, 2}}) {
    for (int64_t b = 0; b < blocks; ++b) {
      h = count_block(n, in, width, b == 0 ? 2 : 1, kinds[i++], h);
      in = width;
    }
  }
  n.conv(256, 512, 1, 1, h), n.bn(512, h), n.relu(512, h);
  n.flops += double(512 * h * h);  // global average pooling: numel(input)
  n.flops += 512.0 * 10;           // linear: numel(input) * out_features
  n.params += 512.0 * 10 + 10;
  return n;
}

}  // namespace

TEST_CASE("ShuffleBlock and ShuffleXception compute the SPOS blocks", "[shufflenet]") {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({2, 8, 9, 9});
  for (int64_t k : {3, 5, 7}) {
    ShuffleBlock down(8, 16, 2, k), same(16, 16, 1, k);
    down.eval(), same.eval();
    randomise_bn(down), randomise_bn(same);
    const torch::Tensor y = down(x);
    const torch::Tensor expected = shuffle_channels(
        torch::cat({plain(child_seq(down, "branch1"), x), plain(child_seq(down, "branch2"), x)}, 1), 2);
    CHECK(y.sizes() == std::vector<int64_t>{2, 16, 5, 5});
    CHECK(torch::allclose(y, expected, 1e-5, 1e-5));
    auto halves = y.chunk(2, 1);
    const torch::Tensor z = same(y);
    CHECK(torch::allclose(z, shuffle_channels(torch::cat({halves[0], plain(child_seq(same, "branch2"), halves[1])}, 1), 2),
                          1e-5, 1e-5));
  }
  ShuffleXception xception(8, 16, 2);
  xception.eval();
  CHECK(child_seq(xception, "branch2").size() == 6);
  CHECK(xception(x).sizes() == std::vector<int64_t>{2, 16, 5, 5});
  // Channel shuffle with 2 groups interleaves the halves: [a0 b0 a1 b1 ...].
  const torch::Tensor c = torch::arange(4).reshape({1, 4, 1, 1}).to(torch::kFloat);
  CHECK(torch::equal(shuffle_channels(c, 2).flatten(), torch::tensor({0.f, 2.f, 1.f, 3.f})));
}

TEST_CASE("channel shuffle and interleave equal reshape-transpose-reshape, keep the memory format, and their gradients",
          "[shufflenet]") {
  torch::manual_seed(0);
  // The plain LibTorch formula: N x (g c) x H x W -> N x g x c -> transposed -> flattened.
  auto reference = [](const torch::Tensor& x, int64_t g) {
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    return x.reshape({n, g, c / g, h, w}).transpose(1, 2).reshape({n, c, h, w});
  };
  for (const auto format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
    const torch::Tensor x = torch::randn({3, 12, 5, 4}).contiguous(format);
    for (int64_t g : {2, 3, 4}) {
      const torch::Tensor y = shuffle_channels(x, g);
      CHECK(torch::equal(y, reference(x, g)));
      CHECK(y.is_contiguous(format));
    }
    torch::Tensor a = torch::randn({3, 6, 5, 4}).contiguous(format).requires_grad_();
    torch::Tensor b = torch::randn({3, 6, 5, 4}).contiguous(format).requires_grad_();
    const torch::Tensor y = interleave_channels(a, b);
    CHECK(y.is_contiguous(format));
    const torch::Tensor expected = reference(torch::cat({a, b}, 1), 2);
    CHECK(torch::equal(y, expected));
    const torch::Tensor dy = torch::randn_like(y);
    const auto got = torch::autograd::grad({y}, {a, b}, {dy});
    const auto want = torch::autograd::grad({expected}, {a, b}, {dy});
    CHECK(torch::equal(got[0], want[0]));
    CHECK(torch::equal(got[1], want[1]));
    // A non-contiguous slice (the pass-through half of a stride-1 block) works as well.
    const torch::Tensor wide = torch::randn({3, 12, 5, 4}).contiguous(format);
    const auto halves = wide.chunk(2, 1);
    torch::Tensor left = halves[0].detach().requires_grad_(), right = halves[1].detach().requires_grad_();
    const torch::Tensor joined = interleave_channels(left, right);
    CHECK(torch::equal(joined, reference(wide, 2)));
    CHECK(joined.is_contiguous(format));
    // Its gradient, also for an upstream gradient in the other memory format.
    for (const auto grad_format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
      const torch::Tensor g = torch::randn_like(joined).contiguous(grad_format);
      const auto split = torch::autograd::grad({joined}, {left, right}, {g}, /*retain_graph=*/true);
      CHECK(torch::equal(split[0], g.index({torch::indexing::Slice(), torch::indexing::Slice(0, 12, 2)})));
      CHECK(torch::equal(split[1], g.index({torch::indexing::Slice(), torch::indexing::Slice(1, 12, 2)})));
    }
  }
  // No gradient needed, a one-pixel image, and float64 (ATen's copies) as well.
  for (const auto& [n, c, h, w] : std::vector<std::array<int64_t, 4>>{{1, 3, 1, 1}, {2, 5, 3, 7}}) {
    for (const auto dtype : {torch::kFloat, torch::kDouble}) {
      const torch::Tensor a = torch::randn({n, c, h, w}, dtype).contiguous(torch::MemoryFormat::ChannelsLast);
      const torch::Tensor b = torch::randn({n, c, h, w}, dtype).contiguous(torch::MemoryFormat::ChannelsLast);
      torch::NoGradGuard no_grad;
      CHECK(torch::equal(interleave_channels(a, b), reference(torch::cat({a, b}, 1), 2)));
    }
  }
}

TEST_CASE("SearchableShuffleNetV2 names its mutables as MMRazor and counts as the closed form",
          "[shufflenet][estimator]") {
  register_mutables();
  auto model = std::dynamic_pointer_cast<Model>(
      test::build_model(supernet_table(Json::array({{64, 2}, {128, 2}, {256, 2}}), 512)));
  REQUIRE(model);
  NasMutator mutator;
  mutator.prepare(*model);
  REQUIRE(mutator.search_groups().size() == 6);
  CHECK(mutator.search_groups()[0].names[0] == "backbone.layers.0.0");
  CHECK(mutator.search_groups()[5].names[0] == "backbone.layers.2.1");
  CHECK(model->named_parameters().contains("backbone.layers.0.0._candidates.shuffle_7x7.branch2.1.conv.weight"));
  CHECK(model->named_parameters().contains("backbone.layers.3.conv.weight"));  // the last 1x1 conv
  CHECK(model->forward_tensor(torch::randn({2, 1, 28, 28})).sizes() == std::vector<int64_t>{2, 10});

  ResourceEstimator estimator(ResourceEstimatorOptions().with_input_shape({1, 1, 28, 28}).with_units(""));
  const std::vector<std::vector<std::string>> subnets = {
      {"3", "3", "3", "3", "3", "3"}, {"7", "7", "7", "7", "7", "7"}, {"x", "x", "x", "x", "x", "x"},
      {"5", "x", "3", "7", "x", "5"}};
  for (const auto& kinds : subnets) {
    Json choices = Json::object();
    for (size_t i = 0; i < kinds.size(); ++i) {
      choices["module_" + std::to_string(i)] = kinds[i] == "x" ? "shuffle_xception" : "shuffle_" + kinds[i] + "x" + kinds[i];
    }
    mutator.set_choices(choices);
    const Resources counted = estimator.estimate(*model);
    const Count expected = closed_form(kinds);
    INFO(choices.dump());
    CHECK(counted.flops == expected.flops);
    CHECK(counted.params == expected.params);
  }
  // All 3x3: 7.459 M FLOPs at 1x1x28x28; all 7x7: 8.708 M.
  CHECK(closed_form({"3", "3", "3", "3", "3", "3"}).flops == 7459200);
  CHECK(closed_form({"7", "7", "7", "7", "7", "7"}).flops == 8708480);
}
