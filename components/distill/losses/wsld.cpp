#include "components/distill/losses/wsld.h"

#include "components/distill/losses/loss_utils.h"

namespace razor::distill {

WSLD::WSLD(WSLDOptions options) : DistillLoss("WSLD", options.loss_weight), options_(options) {
  RAZOR_CHECK(options_.num_classes > 0, "WSLD: num_classes must be positive, got ",
              options_.num_classes);
}

std::shared_ptr<DistillLoss> WSLD::from_args(Args& args, const BuildContext&) {
  WSLDOptions options;
  options.tau = args.get<double>("tau", options.tau);
  options.num_classes = args.get<int64_t>("num_classes", options.num_classes);
  if (options.num_classes <= 0) args.fail("num_classes", "must be positive");
  options.loss_weight = args.get<double>("loss_weight", options.loss_weight);
  return std::make_shared<WSLD>(options);
}

std::vector<LossArgument> WSLD::arguments() const {
  return {{"student"}, {"teacher"}, {"gt_labels"}};
}

torch::Tensor WSLD::forward(const LossInputs& inputs) {
  const auto& student = loss_input(inputs, "student", name());
  const auto& teacher = loss_input(inputs, "teacher", name());
  const auto labels = loss_input(inputs, "gt_labels", name()).reshape({-1, 1}).to(torch::kLong);
  RAZOR_CHECK(student.dim() == 2 && student.size(1) == options_.num_classes &&
                  teacher.sizes() == student.sizes(),
              "WSLD: expected N x num_classes (", options_.num_classes,
              ") logits for student and teacher, got ", student.sizes(), " and ",
              teacher.sizes());
  const double tau = options_.tau;
  auto soft_ce = -(torch::softmax(teacher / tau, 1) * torch::log_softmax(student / tau, 1))
                      .sum(1, true);
  auto ce_s = -torch::log_softmax(student.detach(), 1).gather(1, labels);
  auto ce_t = -torch::log_softmax(teacher.detach(), 1).gather(1, labels);
  auto weight = 1.0 - torch::exp(-torch::clamp_min(ce_s / (ce_t + 1e-7), 0.0));
  return loss_weight_ * tau * tau * (weight * soft_ce).mean();
}

}  // namespace razor::distill
