#include "components/nn/channel_ops.h"

#include <torch/torch.h>

#include <ostream>

#include "components/nn/onnx_emitter.h"
#include "components/nn/op_description.h"
#include "engine/error.h"

namespace razor::nn {

torch::Tensor shuffle_channels(const torch::Tensor& x, int64_t groups) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  // One copy into a tensor of x's memory format; splitting the channel dimension is a view
  // in either format, where a reshape after the transpose would return a contiguous one.
  torch::Tensor out = torch::empty_like(x, x.suggest_memory_format());
  out.view({n, c / groups, groups, h, w}).copy_(x.reshape({n, groups, c / groups, h, w}).transpose(1, 2));
  return out;
}

Chunk::Chunk(int64_t chunks, int64_t index) : Module("Chunk"), chunks_(chunks), index_(index) {
  RAZOR_CHECK(chunks > 0 && index >= 0 && index < chunks, "Chunk: index ", index, " of ", chunks,
              " chunks is out of range");
}

torch::Tensor Chunk::forward(const torch::Tensor& input) {
  const int64_t c = input.size(1);
  RAZOR_CHECK(c % chunks_ == 0, path(), ": ", c, " channels do not split into ", chunks_, " equal chunks");
  return input.narrow(1, index_ * (c / chunks_), c / chunks_);
}

void Chunk::pretty_print(std::ostream& stream) const {
  stream << "Chunk(chunks=" << chunks_ << ", index=" << index_ << ")";
}

// A view: its values keep their grid; counted as nothing (MMRazor counts no tensor methods).
const OpDescription* Chunk::description() const {
  static const OpDescription d{
      {QuantRole::kSharesInput, ChainRole::kNone, {}, /*keeps_grid=*/true}, nullptr,
      [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
        const auto& chunk = static_cast<Chunk&>(op);
        const int64_t size = onnx.input_shape(0).at(1) / chunk.chunks();
        const std::string out = onnx.output();
        const auto one = [](int64_t v) { return torch::tensor({v}, torch::kLong); };
        onnx.node("Slice",
                  {inputs.at(0), onnx.constant(".starts", one(chunk.index() * size)),
                   onnx.constant(".ends", one((chunk.index() + 1) * size)), onnx.constant(".axes", one(1))},
                  out);
        return out;
      },
      [](const Module& op, const std::vector<std::vector<int64_t>>& shapes) {
        const auto& chunk = static_cast<const Chunk&>(op);
        const int64_t size = shapes.at(0).at(1) / chunk.chunks();
        ChannelRule rule;
        rule.flow = ChannelFlow::kSlice;
        rule.start = chunk.index() * size;
        rule.end = rule.start + size;
        return rule;
      }};
  return &d;
}

ChannelShuffle::ChannelShuffle(int64_t groups) : Module("ChannelShuffle"), groups_(groups) {
  RAZOR_CHECK(groups > 0, "ChannelShuffle: groups must be positive, got ", groups);
}

torch::Tensor ChannelShuffle::forward(const torch::Tensor& input) {
  RAZOR_CHECK(input.dim() == 4 && input.size(1) % groups_ == 0, path(), ": a channel shuffle of ", groups_,
              " groups needs N x C x H x W with C a multiple of it, got ", input.sizes());
  return shuffle_channels(input, groups_);
}

void ChannelShuffle::pretty_print(std::ostream& stream) const { stream << "ChannelShuffle(groups=" << groups_ << ")"; }

// A permutation of channels: values keep their grid. ONNX: reshape to N x g x C/g x H x W,
// swap the group axes, reshape back.
const OpDescription* ChannelShuffle::description() const {
  static const OpDescription d{
      {QuantRole::kSharesInput, ChainRole::kNone, {}, /*keeps_grid=*/true}, nullptr,
      [](OnnxEmitter& onnx, Module& op, const std::vector<std::string>& inputs) {
        const int64_t g = static_cast<ChannelShuffle&>(op).groups();
        const auto shape = onnx.input_shape(0);
        const int64_t c = shape.at(1), h = shape.at(2), w = shape.at(3);
        const std::string out = onnx.output();
        const std::string grouped = onnx.value("/grouped"), swapped = onnx.value("/swapped");
        // 0 keeps the batch size of the running input (the traced one may differ).
        onnx.node("Reshape", {inputs.at(0), onnx.constant(".grouped_shape", torch::tensor({int64_t{0}, g, c / g, h, w}))},
                  grouped);
        onnx.node("Transpose", {grouped}, swapped, {{"perm", std::vector<int64_t>{0, 2, 1, 3, 4}}});
        onnx.node("Reshape", {swapped, onnx.constant(".shape", torch::tensor({int64_t{0}, c, h, w}))}, out);
        return out;
      }};
  return &d;
}

}  // namespace razor::nn
