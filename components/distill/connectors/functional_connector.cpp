#include "components/distill/connectors/functional_connector.h"

#include <torch/torch.h>

#include "engine/strings.h"

namespace razor {

namespace F = torch::nn::functional;

TorchFunctionalConnector::TorchFunctionalConnector(std::string function_name, Function function)
    : Connector("TorchFunctionalConnector"), function_name_(std::move(function_name)), function_(std::move(function)) {}

namespace {

using Function = TorchFunctionalConnector::Function;

Function pooling(const std::string& name, Args& a) {
  const int64_t kernel = a.require<int64_t>("kernel_size");
  const int64_t stride = a.get<int64_t>("stride", kernel), padding = a.get<int64_t>("padding", 0);
  if (name == "avg_pool2d") {
    return [=](const torch::Tensor& x) { return torch::avg_pool2d(x, kernel, stride, padding); };
  }
  return [=](const torch::Tensor& x) { return torch::max_pool2d(x, kernel, stride, padding); };
}

Function interpolate(Args& a) {
  auto options = F::InterpolateFuncOptions();
  const auto size = a.optional<std::vector<int64_t>>("size");
  const auto scale = a.optional<double>("scale_factor");
  if (size.has_value() == scale.has_value()) a.fail("size", "give exactly one of size and scale_factor");
  if (size) options.size(*size);
  if (scale) options.scale_factor(std::vector<double>{*scale, *scale});
  const std::string mode = a.get<std::string>("mode", "nearest");
  if (mode == "nearest") {
    options.mode(torch::kNearest);
  } else if (mode == "bilinear") {
    options.mode(torch::kBilinear);
  } else if (mode == "bicubic") {
    options.mode(torch::kBicubic);
  } else if (mode == "area") {
    options.mode(torch::kArea);
  } else {
    a.fail("mode", "unknown mode \"" + mode + "\" (nearest, bilinear, bicubic, area)");
  }
  if (a.has("align_corners")) options.align_corners(a.require<bool>("align_corners"));
  return [options](const torch::Tensor& x) { return F::interpolate(x, options); };
}

Function make_function(const std::string& name, Args& a) {
  if (name == "avg_pool2d" || name == "max_pool2d") return pooling(name, a);
  if (name == "adaptive_avg_pool2d" || name == "adaptive_max_pool2d") {
    const int64_t size = a.require<int64_t>("output_size");
    if (name == "adaptive_avg_pool2d") {
      return [=](const torch::Tensor& x) { return torch::adaptive_avg_pool2d(x, {size, size}); };
    }
    return [=](const torch::Tensor& x) { return std::get<0>(torch::adaptive_max_pool2d(x, {size, size})); };
  }
  if (name == "interpolate") return interpolate(a);
  if (name == "flatten") {
    const int64_t start = a.get<int64_t>("start_dim", 0), end = a.get<int64_t>("end_dim", -1);
    return [=](const torch::Tensor& x) { return torch::flatten(x, start, end); };
  }
  if (name == "normalize") {
    const double p = a.get<double>("p", 2.0);
    const int64_t dim = a.get<int64_t>("dim", 1);
    return [=](const torch::Tensor& x) { return F::normalize(x, F::NormalizeFuncOptions().p(p).dim(dim)); };
  }
  if (name == "relu") return [](const torch::Tensor& x) { return torch::relu(x); };
  if (name == "softmax" || name == "log_softmax") {
    const int64_t dim = a.require<int64_t>("dim");
    if (name == "softmax") return [=](const torch::Tensor& x) { return torch::softmax(x, dim); };
    return [=](const torch::Tensor& x) { return torch::log_softmax(x, dim); };
  }
  return nullptr;
}

}  // namespace

std::shared_ptr<Connector> TorchFunctionalConnector::from_args(Args& args, const BuildContext&) {
  static const std::vector<std::string> known = {"avg_pool2d", "max_pool2d", "adaptive_avg_pool2d",
                                                 "adaptive_max_pool2d", "interpolate", "flatten",
                                                 "normalize", "relu", "softmax", "log_softmax"};
  const std::string name = args.require<std::string>("function_name");
  if (std::find(known.begin(), known.end(), name) == known.end()) {
    args.fail("function_name", "unknown function \"" + name + "\"" + did_you_mean(name, known) +
                                   " (functions: " + join(known, ", ") + ")");
  }
  Json empty = Json::object();
  Args func_args = args.has("func_args") ? args.sub("func_args") : Args(empty, args.path() + ".func_args", args.config());
  Function function = make_function(name, func_args);
  func_args.finish();
  return std::make_shared<TorchFunctionalConnector>(name, std::move(function));
}

}  // namespace razor
