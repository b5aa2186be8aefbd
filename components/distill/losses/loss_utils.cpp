#include "components/distill/losses/loss_utils.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/strings.h"

namespace razor::distill {

const torch::Tensor& loss_input(const LossInputs& inputs, const std::string& name,
                                const std::string& loss) {
  auto it = inputs.find(name);
  RAZOR_CHECK(it != inputs.end() && it->second.defined(), loss, ": missing input \"", name, "\"");
  return it->second;
}

torch::Tensor optional_input(const LossInputs& inputs, const std::string& name) {
  auto it = inputs.find(name);
  return it == inputs.end() ? torch::Tensor() : it->second;
}

std::string read_choice(Args& args, const std::string& key, const std::string& fallback,
                        const std::vector<std::string>& choices) {
  const std::string value = args.get<std::string>(key, fallback);
  if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
    args.fail(key, "expected one of " + join(choices, ", ") + ", got \"" + value + "\"" +
                       did_you_mean(value, choices));
  }
  return value;
}

void check_choice(const std::string& loss, const std::string& key, const std::string& value,
                  const std::vector<std::string>& choices) {
  RAZOR_CHECK(std::find(choices.begin(), choices.end(), value) != choices.end(), loss, ": ", key,
              " must be one of ", join(choices, ", "), ", got \"", value, "\"");
}

torch::Tensor reduce_loss(const torch::Tensor& elementwise, const std::string& reduction) {
  if (reduction == "none") return elementwise;
  if (reduction == "sum") return elementwise.sum();
  if (reduction == "mean") return elementwise.mean();
  RAZOR_ASSERT(reduction == "batchmean");
  return elementwise.sum() / elementwise.size(0);
}

}  // namespace razor::distill
