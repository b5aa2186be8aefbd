#pragma once
// MMRazor's ConfigurableDistiller: student and teacher recorders, distillation losses, and
// `loss_forward_mappings` saying which recorded tensor feeds each loss argument.
//
//   [model.distiller]
//   type = "ConfigurableDistiller"
//   student_recorders = { fc = { type = "ModuleOutputs", source = "head.fc" } }
//   teacher_recorders = { fc = { type = "ModuleOutputs", source = "head.fc" } }
//   distill_losses = { loss_kd = { type = "KLDivergence", tau = 4, loss_weight = 0.9 } }
//   [model.distiller.loss_forward_mappings.loss_kd]
//   preds_S = { from_student = true, recorder = "fc" }
//   preds_T = { from_student = false, recorder = "fc" }
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "components/distill/distill_loss.h"
#include "components/distill/recorder.h"
#include "engine/args.h"
#include "engine/model.h"

namespace razor {

/// Where one loss argument comes from.
struct RecordSource {
  std::string recorder;
  bool from_student = true;
  int64_t record_idx = 0;
  std::optional<int64_t> data_idx;
};

class ConfigurableDistiller : public torch::nn::Module {
 public:
  explicit ConfigurableDistiller(Args& args);

  /// Binds the recorders to the models and checks every mapping (unknown recorder or loss
  /// argument, or a required argument left unmapped, is a config error naming it).
  void prepare(torch::nn::Module& student, torch::nn::Module* teacher);

  RecorderManager& student_recorders() { return student_recorders_; }
  RecorderManager& teacher_recorders() { return teacher_recorders_; }

  /// Each loss on its recorded inputs, by loss name, in config order.
  LossMap compute_distill_losses();

 private:
  torch::Tensor fetch(const RecordSource& source) const;

  std::string where_;
  RecorderManager student_recorders_, teacher_recorders_;
  std::vector<std::pair<std::string, std::shared_ptr<DistillLoss>>> losses_;
  std::map<std::string, std::map<std::string, RecordSource>> mappings_;
};

/// "distillers": ConfigurableDistiller.
Registry<ConfigurableDistiller>& distiller_registry();
void register_distillers();

}  // namespace razor
