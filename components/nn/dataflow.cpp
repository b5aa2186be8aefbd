#include "components/nn/dataflow.h"

#include <torch/torch.h>

#include <map>
#include <unordered_map>

#include "engine/error.h"

namespace razor::nn {

int64_t Dataflow::find(const std::string& path, int64_t call) const {
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].path == path && nodes[i].call == call) return static_cast<int64_t>(i);
  }
  return -1;
}

int64_t Dataflow::only_consumer(int64_t node) const {
  const DataflowNode& n = nodes.at(static_cast<size_t>(node));
  if (n.is_output || n.consumers.size() != 1) return -1;
  return n.consumers[0];
}

namespace {
bool is_leaf(torch::nn::Module& module) {
  for (const auto& child : module.children()) {
    if (std::dynamic_pointer_cast<Module>(child)) return false;
  }
  return true;
}
}  // namespace

Dataflow trace_dataflow(torch::nn::Module& root, const torch::Tensor& input,
                        const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  Dataflow flow;
  flow.input_shape = input.sizes().vec();
  // Values are told apart by their TensorImpl; every traced value is kept alive until the
  // end, so no address is reused for another value.
  std::unordered_map<const void*, int64_t> producer;
  std::vector<torch::Tensor> alive{input};
  producer[input.unsafeGetTensorImpl()] = kGraphInput;
  std::map<Module*, int64_t> calls;
  std::vector<HookHandle> handles;

  // The root by reference: it need not be held by a shared_ptr.
  std::vector<torch::nn::Module*> modules{&root};
  for (const auto& m : root.modules(/*include_self=*/false)) modules.push_back(m.get());
  for (torch::nn::Module* m : modules) {
    auto* module = dynamic_cast<Module*>(m);
    if (!module || !is_leaf(*m)) continue;
    handles.push_back(module->add_forward_hook([&](Module& self, const Inputs& inputs, torch::Tensor& output) {
      DataflowNode node;
      node.module = &self;
      node.path = self.path();
      node.type = self.name();
      node.call = calls[&self]++;
      const int64_t index = static_cast<int64_t>(flow.nodes.size());
      for (const auto& x : inputs) {
        auto it = producer.find(x.unsafeGetTensorImpl());
        const int64_t from = it == producer.end() ? kUnknownProducer : it->second;
        node.inputs.push_back(from);
        node.input_shapes.push_back(x.sizes().vec());
        if (from >= 0) flow.nodes[static_cast<size_t>(from)].consumers.push_back(index);
        if (from == kGraphInput) flow.input_consumers.push_back(index);
      }
      node.output_shape = output.sizes().vec();
      alive.push_back(output);
      producer[output.unsafeGetTensorImpl()] = index;
      flow.nodes.push_back(std::move(node));
    }));
  }
  torch::Tensor out;
  try {
    torch::NoGradGuard no_grad;
    out = forward(input);
  } catch (...) {
    for (auto& h : handles) h.remove();
    throw;
  }
  for (auto& h : handles) h.remove();
  auto it = producer.find(out.unsafeGetTensorImpl());
  if (it != producer.end() && it->second >= 0) {
    flow.output = it->second;
    flow.nodes[static_cast<size_t>(it->second)].is_output = true;
  }
  return flow;
}

}  // namespace razor::nn
