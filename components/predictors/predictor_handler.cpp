#include "components/predictors/predictor_handler.h"

#include <torch/torch.h>

#include "components/predictors/gauss_process_handler.h"
#include "components/predictors/mlp_handler.h"

namespace razor {

void PredictorHandler::read_fit_cfg(Args& fit_cfg) {
  if (!fit_cfg.table().empty()) {
    fit_cfg.fail(fit_cfg.table().begin().key(),
                 "fit_cfg is only supported for MLPHandler (as in MMRazor); " + type() +
                     " has no training parameters");
  }
}

Registry<PredictorHandler>& predictor_handler_registry() {
  static Registry<PredictorHandler> registry("predictor_handlers");
  return registry;
}

void register_predictors() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = predictor_handler_registry();
  registry.add("GaussProcessHandler", [](Args& args, const BuildContext&) {
    return std::static_pointer_cast<PredictorHandler>(
        std::make_shared<GaussProcessHandler>(gauss_process_options_from(args)));
  });
  registry.add("MLPHandler", [](Args& args, const BuildContext&) {
    return std::static_pointer_cast<PredictorHandler>(
        std::make_shared<MLPHandler>(mlp_options_from(args)));
  });
}

namespace detail {

Json tensor_to_json(const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.to(torch::kCPU, torch::kDouble).contiguous();
  RAZOR_ASSERT(t.dim() == 1 || t.dim() == 2);
  const double* data = t.data_ptr<double>();
  if (t.dim() == 1) return Json(std::vector<double>(data, data + t.numel()));
  Json rows = Json::array();
  const int64_t cols = t.size(1);
  for (int64_t r = 0; r < t.size(0); ++r)
    rows.push_back(std::vector<double>(data + r * cols, data + (r + 1) * cols));
  return rows;
}

torch::Tensor tensor_from_json(const Json& value, const std::string& what) {
  RAZOR_CHECK(value.is_array(), what, ": expected a list of numbers, got ", value.type_name());
  const bool matrix = !value.empty() && value[0].is_array();
  const int64_t rows = static_cast<int64_t>(value.size());
  const int64_t cols = matrix ? static_cast<int64_t>(value[0].size()) : 1;
  std::vector<double> data;
  data.reserve(static_cast<size_t>(rows * cols));
  for (const auto& row : value) {
    if (matrix) {
      RAZOR_CHECK(row.is_array() && static_cast<int64_t>(row.size()) == cols, what,
                  ": rows of different lengths");
      for (const auto& v : row) {
        RAZOR_CHECK(v.is_number(), what, ": expected numbers, got ", v.dump());
        data.push_back(v.get<double>());
      }
    } else {
      RAZOR_CHECK(row.is_number(), what, ": expected numbers, got ", row.dump());
      data.push_back(row.get<double>());
    }
  }
  torch::Tensor out = torch::tensor(data, torch::kDouble);
  return matrix ? out.reshape({rows, cols}) : out;
}

}  // namespace detail

}  // namespace razor
