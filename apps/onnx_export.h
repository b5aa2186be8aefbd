#pragma once
// `razor export CONFIG CKPT --format onnx --out model.onnx [--form float|qdq|fakequantize]
// [--verify [--verify-images N]]`: a trained float model, or a quantised one (an
// MMArchitectureQuant checkpoint from `razor ptq` or QAT), as an ONNX file
// (components/export/onnx_writer.h).
//
// --verify proves the file computes what razor computed: razor runs N images of the test
// set through its own model (fake-quantised, observers off), saves inputs, outputs and
// labels beside the file (OUT.check/), and runs scripts/onnx/check.mjs, which loads the file
// in onnxruntime (npm's onnxruntime-node) and compares. A float export must agree within
// 1e-4 relative in onnxruntime and in OpenCV's DNN module; a QDQ export with onnxruntime's
// graph optimisation off must agree within one output quantisation step on at least 99.9 %
// of the values (for an unquantised output, e.g. TensorRT's: 99 % of the values and the
// argmax on 99.9 % of the images). With optimisation on (onnxruntime's int8 kernels) the agreement, top-1 and
// images/s are reported.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "components/export/onnx_writer.h"
#include "components/quant/quantizer.h"
#include "engine/config.h"

namespace razor {

struct OnnxExportOptions {
  std::string out;
  /// "" = qdq for a quantised model, float otherwise.
  std::string form;
  bool verify = false;
  int64_t verify_images = 256;
  /// onnxruntime's intra-op threads in the check.
  int64_t threads = 1;
  /// Images per onnxruntime run in the check (its speed figures depend on it).
  int64_t batch = 250;
};

struct OnnxVerification {
  /// check.mjs's report (see there); null if onnxruntime cannot run the form.
  Json onnxruntime;
  /// QDQ form: the float compute nodes (Conv, FusedConv, Gemm, MatMul, Add, ...) left in
  /// onnxruntime's optimised graph, by type; none when every one became an integer kernel.
  std::map<std::string, int64_t> float_nodes_left;
  /// QDQ form: onnxruntime's images/s on the same model written in float, with full
  /// optimisation, the same threads and batch.
  std::optional<double> float_images_per_s;
  /// OpenCV DNN's relative error on the float form (unset for quantised forms).
  std::optional<double> opencv_relative_error;
  /// What failed, empty when the file passed.
  std::vector<std::string> failures;
};

struct OnnxExportResult {
  deploy::OnnxForm form = deploy::OnnxForm::Float;
  deploy::OnnxSummary summary;
  std::optional<OnnxVerification> verification;
};

/// Builds the model of `config` on the CPU, loads `checkpoint` (all weights required), writes
/// the ONNX file and, with `verify`, checks it.
OnnxExportResult export_onnx(std::shared_ptr<Config> config, const std::string& checkpoint,
                             const OnnxExportOptions& options);

/// How far one quantisation step moves the model's output: the output quantiser's step, or,
/// for a model whose last op is not quantised at its output (OpenVINO, TensorRT), the step of
/// that op's input times its largest weight. 0 when nothing is quantised.
double onnx_output_step(const quant::QuantPlan& plan);

/// Saves `inputs`, razor's `expected` outputs and `labels` (may be undefined) in `dir` as
/// check.mjs reads them, runs it on `model` and returns its report.
/// `batch` images go into each onnxruntime run; `optimized` (if not empty) receives
/// onnxruntime's optimised graph.
Json check_in_onnxruntime(const std::string& model, const std::string& dir, const torch::Tensor& inputs,
                          const torch::Tensor& expected, const torch::Tensor& labels, double output_step,
                          int64_t threads = 1, int64_t batch = 64, const std::string& optimized = "");

/// OpenCV DNN's largest difference from `expected` on `inputs`, over the largest |expected|.
double opencv_relative_error(const std::string& model, const torch::Tensor& inputs, const torch::Tensor& expected);

/// scripts/onnx/check.mjs: $RAZOR_ONNX_CHECK, or found above the executable or the working
/// directory; empty when there is none.
std::string find_onnx_checker();

}  // namespace razor
