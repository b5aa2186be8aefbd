#pragma once
// Reading an ONNX file back: what a runtime made of razor's export (onnxruntime's optimised
// graph, written by `check.mjs --optimized`).
#include <cstdint>
#include <map>
#include <string>

namespace razor::deploy {

/// The nodes of `path` that compute in float (Conv, FusedConv, Gemm, FusedGemm, MatMul, Add,
/// Mul, ...), by type; integer kernels (QLinearConv, QLinearAdd, QGemm, ...) are not counted.
/// A file that does not parse is a runtime error naming it.
std::map<std::string, int64_t> float_compute_nodes(const std::string& path);

}  // namespace razor::deploy
