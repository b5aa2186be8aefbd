#pragma once
// MMRazor's TorchFunctionalConnector: one of torch.nn.functional's shape-changing functions
// applied to the record, with its arguments from `func_args`.
//   { type = "TorchFunctionalConnector", function_name = "adaptive_avg_pool2d",
//     func_args = { output_size = 1 } }
// Functions: avg_pool2d, max_pool2d (kernel_size, stride, padding), adaptive_avg_pool2d,
// adaptive_max_pool2d (output_size), interpolate (size | scale_factor, mode, align_corners),
// flatten (start_dim, end_dim), normalize (p, dim), relu, softmax / log_softmax (dim).
#include <functional>

#include "components/distill/connector.h"

namespace razor {

class TorchFunctionalConnector : public Connector {
 public:
  using Function = std::function<torch::Tensor(const torch::Tensor&)>;
  TorchFunctionalConnector(std::string function_name, Function function);
  static std::shared_ptr<Connector> from_args(Args& args, const BuildContext& context);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override { return {function_(input)}; }
  const std::string& function_name() const { return function_name_; }

 private:
  std::string function_name_;
  Function function_;
};

}  // namespace razor
