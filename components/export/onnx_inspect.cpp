#include "components/export/onnx_inspect.h"

#include <fstream>
#include <set>

#include <onnx/onnx_pb.h>

#include "engine/error.h"

namespace razor::deploy {

std::map<std::string, int64_t> float_compute_nodes(const std::string& path) {
  onnx::ModelProto model;
  std::ifstream in(path, std::ios::binary);
  RAZOR_RUNTIME_CHECK(in && model.ParseFromIstream(&in), "cannot read the ONNX file ", path);
  static const std::set<std::string> float_ops = {"Conv",   "FusedConv",   "ConvTranspose", "Gemm", "FusedGemm",
                                                  "MatMul", "FusedMatMul", "Add",           "Sum",  "Mul", "Sub"};
  std::map<std::string, int64_t> out;
  for (const auto& node : model.graph().node()) {
    if (float_ops.count(node.op_type())) ++out[node.op_type()];
  }
  return out;
}

}  // namespace razor::deploy
