#pragma once
// The dataflow of a model between its leaf ops, read off one forward pass (razor models are
// built from razor modules, so their calls are the graph; LibTorch has no tracer). What
// quantiser placement and the ONNX writer work on.
//
// Each node is one call of a leaf op (a razor module without razor children): the same
// module called twice (ResNet's shared ReLU) gives two nodes. A node's inputs are the
// nodes that produced them, kGraphInput for the model input, or kUnknownProducer when the
// value came from code between modules (a tensor function in a parent's forward).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "components/nn/module.h"

namespace razor::nn {

inline constexpr int64_t kGraphInput = -1;
inline constexpr int64_t kUnknownProducer = -2;

struct DataflowNode {
  Module* module = nullptr;
  std::string path;
  /// The module's type name ("Conv2d", "ReLU", "Add", ...).
  std::string type;
  /// Which call of the module this is in the forward (0 for most).
  int64_t call = 0;
  std::vector<int64_t> inputs;
  /// The shapes of the inputs, as read.
  std::vector<std::vector<int64_t>> input_shapes;
  /// Nodes that read this node's output, in call order (a node reading it twice is listed twice).
  std::vector<int64_t> consumers;
  std::vector<int64_t> output_shape;
  /// Whether the output is the model's output.
  bool is_output = false;
};

struct Dataflow {
  std::vector<DataflowNode> nodes;
  /// The nodes that read the model input, and its shape.
  std::vector<int64_t> input_consumers;
  std::vector<int64_t> input_shape;
  /// The node whose output the forward returned (kUnknownProducer if code made it).
  int64_t output = kUnknownProducer;

  /// The node index of a module's call; -1 if the module was not called that often.
  int64_t find(const std::string& path, int64_t call = 0) const;
  /// The single consumer of `node`, or -1 when it has none or several (or feeds the output).
  int64_t only_consumer(int64_t node) const;
};

/// Runs `forward(input)` once (no grad) with recording hooks on every leaf op under `root`,
/// removed afterwards.
Dataflow trace_dataflow(torch::nn::Module& root, const torch::Tensor& input,
                        const std::function<torch::Tensor(const torch::Tensor&)>& forward);

}  // namespace razor::nn
