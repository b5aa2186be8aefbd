#include "apps/onnx_export.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <opencv2/dnn.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "algorithms/quantization/mm_architecture_quant.h"
#include "apps/export.h"
#include "components/export/onnx_inspect.h"
#include "components/nn/weighted_op.h"
#include "components/quant/fake_quantize.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/runner.h"

namespace razor {

namespace fs = std::filesystem;

namespace {

/// The images (and labels) razor checks an export on: the first `count` of the test set.
struct CheckData {
  torch::Tensor inputs, labels;
};

CheckData collect_images(Runner& runner, int64_t count) {
  const bool has_test = runner.config().tree.contains("test_dataloader");
  RAZOR_CHECK(has_test || runner.config().tree.contains("val_dataloader"), runner.config().file,
              ": has no test_dataloader (or val_dataloader) to take the export's example input from");
  DataLoader& loader = has_test ? runner.test_dataloader() : runner.val_dataloader();
  loader.set_epoch(0);
  loader.start();
  std::vector<torch::Tensor> inputs, labels;
  int64_t have = 0;
  while (have < count) {
    auto batch = loader.next();
    if (!batch) break;
    const int64_t take = std::min(batch->size(), count - have);
    inputs.push_back(batch->inputs.narrow(0, 0, take).to(torch::kFloat));
    if (batch->targets.defined()) labels.push_back(batch->targets.narrow(0, 0, take).to(torch::kLong));
    have += take;
  }
  RAZOR_CHECK(have > 0, runner.config().file, ": the ", has_test ? "test" : "val", " data loader yields no images");
  CheckData data{torch::cat(inputs).contiguous(), {}};
  if (labels.size() == inputs.size()) data.labels = torch::cat(labels).reshape({-1}).contiguous();
  return data;
}

std::string bytes_of(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * c.element_size());
}

std::string shell_quote(const std::string& s) {
  std::string quoted = "'";
  for (char c : s) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

/// Runs the checker and returns its JSON report.
Json run_checker(const std::string& model, const std::string& dir, int64_t threads, int64_t batch,
                 const std::string& optimized) {
  const std::string checker = find_onnx_checker();
  RAZOR_CHECK(!checker.empty(), "--verify: scripts/onnx/check.mjs not found (set RAZOR_ONNX_CHECK to its path)");
  RAZOR_CHECK(fs::exists(fs::path(checker).parent_path() / "node_modules" / "onnxruntime-node"),
              "--verify: onnxruntime-node is not installed beside ", checker, " (scripts/setup installs it)");
  const std::string command = "node " + shell_quote(checker) + " " + shell_quote(model) + " " + shell_quote(dir) +
                              " --threads " + std::to_string(threads) + " --batch " + std::to_string(batch) +
                              (optimized.empty() ? "" : " --optimized " + shell_quote(optimized));
  FILE* pipe = popen(command.c_str(), "r");
  RAZOR_CHECK(pipe, "--verify: cannot run ", command);
  std::string output;
  std::array<char, 4096> buffer{};
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  RAZOR_CHECK(status == 0, "--verify: the onnxruntime check failed (", command, "): ", output);
  // The report is the last line.
  while (!output.empty() && output.back() == '\n') output.pop_back();
  const std::string line = output.substr(output.rfind('\n') == std::string::npos ? 0 : output.rfind('\n') + 1);
  try {
    return Json::parse(line);
  } catch (const Json::exception&) {
    throw config_error("--verify: the onnxruntime check printed no report: ", output);
  }
}

OnnxVerification verify(Runner& runner, const quant::QuantPlan* plan, deploy::OnnxForm form,
                        const OnnxExportOptions& options, const CheckData& data, const nn::Dataflow& flow,
                        const std::vector<int64_t>& input_shape) {
  Model& model = runner.model();
  OnnxVerification result;
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> outputs;
    const int64_t batch = 256;
    for (int64_t start = 0; start < data.inputs.size(0); start += batch) {
      const int64_t n = std::min(batch, data.inputs.size(0) - start);
      // Through the runner's own input path (its memory format), as `razor test` computes.
      Batch batch;
      batch.inputs = data.inputs.narrow(0, start, n);
      outputs.push_back(model.forward_tensor(runner.to_device(batch).inputs).to(torch::kFloat));
    }
    expected = torch::cat(outputs).contiguous();
  }
  const double step = plan && form != deploy::OnnxForm::Float ? onnx_output_step(*plan) : 0.0;
  if (form == deploy::OnnxForm::FakeQuantize) {
    // onnxruntime has no kernel for OpenVINO's FakeQuantize: onnx's checker is all there is here.
    result.onnxruntime = nullptr;
    return result;
  }
  const std::string dir = options.out + ".check";
  const int64_t batch = std::min<int64_t>(options.batch, data.inputs.size(0));
  const bool qdq = form == deploy::OnnxForm::QDQ;
  result.onnxruntime = check_in_onnxruntime(options.out, dir, data.inputs, expected, data.labels, step, options.threads,
                                            batch, qdq ? dir + "/optimized.onnx" : "");
  if (qdq) {
    result.float_nodes_left = deploy::float_compute_nodes(dir + "/optimized.onnx");
    // The same model in float, as fast as onnxruntime runs it (ReLU6 as a Clip it fuses).
    deploy::OnnxOptions float_options;
    float_options.input_shape = input_shape;
    float_options.for_opencv = false;
    deploy::write_onnx(flow, float_options, dir + "/float.onnx");
    const Json float_report = run_checker(dir + "/float.onnx", dir, options.threads, batch, "");
    result.float_images_per_s = float_report.at("all").at("images_per_s").get<double>();
  }
  const Json& report = result.onnxruntime;
  const auto fail = [&](const std::string& what) { result.failures.push_back(what); };
  if (form == deploy::OnnxForm::Float) {
    for (const char* level : {"disabled", "all"}) {
      const double error = report.at(level).at("relative_error").get<double>();
      if (error > 1e-4) fail(std::string("onnxruntime (optimisation ") + level + "): relative error " + std::to_string(error) + " > 1e-4");
    }
    const int64_t n = std::min<int64_t>(data.inputs.size(0), 64);
    result.opencv_relative_error = opencv_relative_error(options.out, data.inputs.narrow(0, 0, n), expected.narrow(0, 0, n));
    if (*result.opencv_relative_error > 1e-4) {
      fail("OpenCV DNN: relative error " + std::to_string(*result.opencv_relative_error) + " > 1e-4");
    }
  } else if (step > 0) {
    // A quantised output moves in whole steps: a rounding flip (float summation order differs
    // between runtimes) shows as one step. An unquantised output (TensorRT, OpenVINO) carries
    // flips upstream through float ops, so some values move by a few input steps: the argmax
    // must then agree on 99.9 % of the images and 99 % of the values stay within one step.
    const Json& disabled = report.at("disabled");
    const double within = disabled.at("within_one_step").get<double>();
    const auto* out_q = plan->output_quantizer(plan->flow.output);
    const bool quantised_output = out_q && out_q->fake_quant_enabled();
    const double required = quantised_output ? 0.999 : 0.99;
    if (within < required) {
      fail("onnxruntime (optimisation disabled): " + std::to_string(100 * within) + " % of the outputs within one " +
           "quantisation step (at least " + std::to_string(100 * required) + " % required)");
    }
    const double agreement = disabled.at("argmax_agreement").get<double>();
    if (!quantised_output && agreement < 0.999) {
      fail("onnxruntime (optimisation disabled): argmax agreement " + std::to_string(100 * agreement) +
           " % (at least 99.9 % required)");
    }
  } else {
    const double error = report.at("disabled").at("relative_error").get<double>();
    if (error > 1e-4) fail("onnxruntime (optimisation disabled): relative error " + std::to_string(error) + " > 1e-4");
  }
  return result;
}

}  // namespace

std::string find_onnx_checker() {
  if (const char* env = std::getenv("RAZOR_ONNX_CHECK"); env && *env) return fs::exists(env) ? env : "";
  std::vector<fs::path> starts = {fs::current_path()};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  for (fs::path dir : starts) {
    for (; !dir.empty(); dir = dir.parent_path()) {
      const fs::path candidate = dir / "scripts" / "onnx" / "check.mjs";
      if (fs::exists(candidate)) return candidate.string();
      if (dir == dir.root_path()) break;
    }
  }
  return "";
}

double onnx_output_step(const quant::QuantPlan& plan) {
  const nn::Dataflow& flow = plan.flow;
  const int64_t last = flow.output;
  if (last < 0) return 0.0;
  if (auto* fq = plan.output_quantizer(last); fq && fq->fake_quant_enabled()) {
    return fq->calculate_qparams().scale.max().item<double>();
  }
  quant::FakeQuantizer* input = nullptr;
  for (int64_t node = last; node >= 0 && !input;) {
    input = plan.input_quantizer(node, 0);
    const int64_t producer = flow.nodes[static_cast<size_t>(node)].inputs.empty()
                                 ? nn::kGraphInput
                                 : flow.nodes[static_cast<size_t>(node)].inputs[0];
    if (!input && producer >= 0) input = plan.output_quantizer(producer);
    node = producer;
  }
  if (!input) return 0.0;
  double step = input->calculate_qparams().scale.max().item<double>();
  if (auto* op = dynamic_cast<nn::WeightedOp*>(flow.nodes[static_cast<size_t>(last)].module)) {
    step *= op->weight.detach().abs().max().item<double>();
  }
  return step;
}

Json check_in_onnxruntime(const std::string& model, const std::string& dir, const torch::Tensor& inputs,
                          const torch::Tensor& expected, const torch::Tensor& labels, double output_step,
                          int64_t threads, int64_t batch, const std::string& optimized) {
  fs::create_directories(dir);
  const Json meta = {{"input_shape", inputs.sizes().vec()},
                     {"output_shape", expected.sizes().vec()},
                     {"output_step", output_step}};
  write_file_atomically(dir + "/meta.json", meta.dump(2) + "\n");
  write_file_atomically(dir + "/input.f32", bytes_of(inputs.to(torch::kFloat)));
  write_file_atomically(dir + "/expected.f32", bytes_of(expected.to(torch::kFloat)));
  if (labels.defined()) {
    write_file_atomically(dir + "/labels.i64", bytes_of(labels.to(torch::kLong)));
  } else if (fs::exists(dir + "/labels.i64")) {
    fs::remove(dir + "/labels.i64");
  }
  return run_checker(model, dir, threads, batch, optimized);
}


double opencv_relative_error(const std::string& model, const torch::Tensor& inputs, const torch::Tensor& expected) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(model);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  std::vector<int> sizes(inputs.sizes().begin(), inputs.sizes().end());
  torch::Tensor x = inputs.contiguous();
  cv::Mat blob(static_cast<int>(sizes.size()), sizes.data(), CV_32F, x.data_ptr());
  net.setInput(blob);
  cv::Mat out = net.forward();
  RAZOR_CHECK(static_cast<int64_t>(out.total()) == expected.numel(), "--verify: OpenCV's DNN gave ", out.total(),
              " outputs for ", expected.numel());
  const torch::Tensor y = torch::from_blob(out.ptr<float>(), expected.sizes(), torch::kFloat).clone();
  return (y - expected).abs().max().item<double>() / std::max(expected.abs().max().item<double>(), 1e-12);
}

OnnxExportResult export_onnx(std::shared_ptr<Config> config, const std::string& checkpoint,
                             const OnnxExportOptions& options) {
  RAZOR_CHECK(!options.out.empty(), "give the ONNX file to write with --out");
  RAZOR_CHECK(fs::exists(checkpoint), "checkpoint not found: ", checkpoint);
  RAZOR_CHECK(fs::absolute(options.out) != fs::absolute(checkpoint), "--out must not overwrite the checkpoint ", checkpoint);
  RAZOR_CHECK(options.verify_images >= 1, "--verify-images must be at least 1, got ", options.verify_images);
  RAZOR_CHECK(options.batch >= 1, "--batch must be at least 1, got ", options.batch);
  RAZOR_CHECK(options.threads >= 1, "--threads must be at least 1, got ", options.threads);
  std::optional<deploy::OnnxForm> requested;
  if (!options.form.empty()) requested = deploy::parse_onnx_form(options.form);

  const std::unique_ptr<Runner> owned_runner = runner_for_export(config, checkpoint);
  Runner& runner = *owned_runner;
  Model& model = runner.model();
  QuantSwitches switches(model);
  switches.observers_off();

  auto* quantised = dynamic_cast<MMArchitectureQuant*>(&model);
  if (quantised) quantised->sync_weight_bits();  // the checkpoint's bit widths, before the writer reads scales
  const deploy::OnnxForm form = requested.value_or(quantised ? deploy::OnnxForm::QDQ : deploy::OnnxForm::Float);
  RAZOR_CHECK(form == deploy::OnnxForm::Float || quantised, "--form ", deploy::onnx_form_name(form), ": ",
              config->file, " is not a quantised model (model.type = \"MMArchitectureQuant\"); export it as float");

  const CheckData data = collect_images(runner, options.verify ? options.verify_images : 1);
  std::vector<int64_t> input_shape = data.inputs.sizes().vec();
  input_shape[0] = 1;
  nn::Dataflow traced;
  const nn::Dataflow* flow = nullptr;
  if (quantised) {
    flow = &quantised->plan().flow;  // the quantisers' own graph (a re-trace would see them as ops)
    input_shape = quantised->input_shape();
  } else {
    nn::assign_paths(model);
    traced = nn::trace_dataflow(model, data.inputs.narrow(0, 0, 1),
                                [&model](const torch::Tensor& x) { return model.forward_tensor(x); });
    flow = &traced;
  }
  deploy::OnnxOptions onnx_options;
  onnx_options.form = form;
  onnx_options.plan = quantised ? &quantised->plan() : nullptr;
  onnx_options.input_shape = input_shape;

  OnnxExportResult result;
  result.form = form;
  result.summary = deploy::write_onnx(*flow, onnx_options, options.out);
  if (options.verify) {
    result.verification = verify(runner, onnx_options.plan, form, options, data, *flow, input_shape);
  }
  switches.restore();
  return result;
}

}  // namespace razor
