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
//
// `connectors = { s_feat = { type = "ConvModuleConnector", ... } }` (a list chains) adapt a
// recorded tensor before the loss: `{ ..., connector = "s_feat", connector_idx = 0 }`.
// `distill_deliveries` (delivery.h) replay the teacher's random draws in the student.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "components/distill/connector.h"
#include "components/distill/delivery.h"
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
  /// Applied to the record; "" for none. connector_idx picks one of its outputs.
  std::string connector;
  std::optional<int64_t> connector_idx;
};

class ConfigurableDistiller : public torch::nn::Module {
 public:
  ConfigurableDistiller(Args& args, const BuildContext& context);

  /// Binds the recorders to the models and checks every mapping (unknown recorder or loss
  /// argument, or a required argument left unmapped, is a config error naming it).
  void prepare(torch::nn::Module& student, torch::nn::Module* teacher);

  RecorderManager& student_recorders() { return student_recorders_; }
  RecorderManager& teacher_recorders() { return teacher_recorders_; }
  DeliveryManager& deliveries() { return deliveries_; }
  /// The connector called `name`; unknown names are config errors listing the known ones.
  Connector& connector(const std::string& name) const;
  const std::map<std::string, std::shared_ptr<Connector>>& connectors() const { return connectors_; }
  /// Which recorded tensor feeds each argument of each loss.
  const std::map<std::string, std::map<std::string, RecordSource>>& loss_forward_mappings() const {
    return mappings_;
  }

  /// Each loss on its recorded inputs, by loss name, in config order.
  LossMap compute_distill_losses();
  /// "distill_losses.<name>.loss_weight" of every loss, for parameter schedulers.
  ScheduledValues scheduled_values();

 protected:
  torch::Tensor fetch(const RecordSource& source) const;
  /// Self-distillation's teacher records come from the student: they must not be trained.
  bool detach_teacher_records_ = false;
  std::string where_;

 private:
  RecorderManager student_recorders_, teacher_recorders_;
  DeliveryManager deliveries_;
  std::shared_ptr<torch::nn::Module> connector_holder_;
  std::map<std::string, std::shared_ptr<Connector>> connectors_;
  std::vector<std::pair<std::string, std::shared_ptr<DistillLoss>>> losses_;
  std::map<std::string, std::map<std::string, RecordSource>> mappings_;
};

/// MMRazor's OFDDistiller: sets the margin of every OFDTeacherConnector that feeds an
/// OFDLoss from the statistics of the teacher's BatchNorm2d the record comes from (the
/// expectation of the pre-ReLU response where it is negative, Heo et al. 2019).
class OFDDistiller : public ConfigurableDistiller {
 public:
  using ConfigurableDistiller::ConfigurableDistiller;
  void init_ofd_connectors(torch::nn::Module& teacher);
};

/// The per-channel margins E[x | x < 0] of x ~ N(beta, gamma^2), or -3|gamma| where that
/// event has probability below 0.001.
torch::Tensor ofd_margins(const torch::Tensor& gamma, const torch::Tensor& beta);

/// MMRazor's BYOTDistiller: teacher records (the network's own deepest outputs) are detached.
class BYOTDistiller : public ConfigurableDistiller {
 public:
  BYOTDistiller(Args& args, const BuildContext& context) : ConfigurableDistiller(args, context) {
    detach_teacher_records_ = true;
  }
};

/// "distillers": ConfigurableDistiller, OFDDistiller, BYOTDistiller.
Registry<ConfigurableDistiller>& distiller_registry();
void register_distillers();

}  // namespace razor
