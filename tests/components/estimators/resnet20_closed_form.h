#pragma once
// ResNet-20's FLOPs and params in closed form (MMRazor's counting: convs k*k*in*out per
// output pixel, BN 2 per element, ReLU and pooling 1, linear in*out, the residual add 0), at
// any channel widths: those of each stage's residual path and of each block's inner conv, as
// channel pruning leaves them.
#include <array>
#include <cstdint>

namespace razor::test {

struct ResNet20Widths {
  /// The residual path of each stage (the stem's output is stage 0's).
  std::array<int64_t, 3> stage = {16, 32, 64};
  /// Each block's first conv's output.
  std::array<std::array<int64_t, 3>, 3> inner = {{{16, 16, 16}, {32, 32, 32}, {64, 64, 64}}};
};

struct ClosedForm {
  double flops = 0;
  int64_t params = 0;
};

/// ResNet_CIFAR depth 20 on a 1-channel `size` x `size` image, 10 classes (1x1 conv shortcuts).
inline ClosedForm resnet20_closed_form(int64_t size, const ResNet20Widths& w = {}) {
  ClosedForm c;
  int64_t h = size;
  // A k x k conv (padding k/2, no bias), its output side, and the ops that follow.
  auto conv_out = [&](int64_t in, int64_t out, int64_t k, int64_t stride, int64_t side) {
    const int64_t o = (side + 2 * (k / 2) - k) / stride + 1;
    c.flops += static_cast<double>(k * k * in * out * o * o);
    c.params += k * k * in * out;
    return o;
  };
  auto bn = [&](int64_t ch, int64_t side) {
    c.flops += 2.0 * static_cast<double>(ch * side * side);
    c.params += 2 * ch;
  };
  auto relu = [&](int64_t ch, int64_t side) { c.flops += static_cast<double>(ch * side * side); };

  h = conv_out(1, w.stage[0], 3, 1, h);
  bn(w.stage[0], h);
  relu(w.stage[0], h);
  int64_t in = w.stage[0];
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out = w.stage[stage];
    for (int block = 0; block < 3; ++block) {
      const int64_t mid = w.inner[stage][block];
      const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
      const int64_t o = conv_out(in, mid, 3, stride, h);
      bn(mid, o);
      relu(mid, o);
      conv_out(mid, out, 3, 1, o);
      bn(out, o);
      if (block == 0 && stage > 0) {
        conv_out(in, out, 1, stride, h);  // shortcut conv 1x1 + BN
        bn(out, o);
      }
      relu(out, o);  // after the residual add (which counts 0)
      in = out;
      h = o;
    }
  }
  c.flops += static_cast<double>(in * h * h);  // global average pooling: numel(input)
  c.flops += static_cast<double>(in * 10);     // linear: numel(input) * out_features
  c.params += in * 10 + 10;
  return c;
}

}  // namespace razor::test
