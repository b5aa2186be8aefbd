#include "components/distill/configurable_distiller.h"

#include <cmath>

#include <torch/torch.h>

#include "components/distill/connectors/ofd_connector.h"
#include "components/nn/batch_norm.h"
#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

ConfigurableDistiller::ConfigurableDistiller(Args& args, const BuildContext& context)
    : torch::nn::Module("ConfigurableDistiller"), where_(args.where()) {
  register_distill_losses();
  register_connectors();
  if (args.has("distill_deliveries")) {
    Args deliveries = args.sub("distill_deliveries");
    deliveries_ = build_deliveries(deliveries);
  }
  // Connectors are trained with the student: their weights read "distiller.connectors.NAME.*".
  connector_holder_ = register_module("connectors", std::make_shared<torch::nn::Module>("Connectors"));
  if (args.has("connectors")) {
    Args connectors = args.sub("connectors");
    for (const auto& item : connectors.table().items()) {
      auto connector = build_connector(connectors, item.key(), context);
      connector_holder_->register_module(item.key(), connector);
      connectors_[item.key()] = connector;
    }
  }
  if (args.has("student_recorders")) {
    Args recorders = args.sub("student_recorders");
    student_recorders_ = build_recorders(recorders);
  }
  if (args.has("teacher_recorders")) {
    Args recorders = args.sub("teacher_recorders");
    teacher_recorders_ = build_recorders(recorders);
  }
  Args losses = args.sub("distill_losses");
  for (const auto& item : losses.table().items()) {
    Args loss_args = losses.sub(item.key());
    auto loss = distill_loss_registry().build(loss_args);
    // Registered so that losses with state (CRD's memory banks) are saved in checkpoints.
    register_module(item.key(), loss);
    losses_.emplace_back(item.key(), loss);
  }
  Args mappings = args.sub("loss_forward_mappings");
  for (const auto& loss_item : mappings.table().items()) {
    const std::string& loss_name = loss_item.key();
    auto loss = std::find_if(losses_.begin(), losses_.end(), [&](const auto& l) { return l.first == loss_name; });
    if (loss == losses_.end()) {
      std::vector<std::string> names;
      for (const auto& l : losses_) names.push_back(l.first);
      mappings.fail(loss_name, "no distill loss named \"" + loss_name + "\"" + did_you_mean(loss_name, names));
    }
    std::vector<std::string> arguments;
    for (const auto& argument : loss->second->arguments()) arguments.push_back(argument.name);
    Args loss_mapping = mappings.sub(loss_name);
    for (const auto& arg_item : loss_mapping.table().items()) {
      const std::string& argument = arg_item.key();
      if (std::find(arguments.begin(), arguments.end(), argument) == arguments.end()) {
        loss_mapping.fail(argument, "the loss has no argument \"" + argument + "\"" + did_you_mean(argument, arguments) +
                                        " (arguments: " + join(arguments, ", ") + ")");
      }
      Args source_args = loss_mapping.sub(argument);
      RecordSource source;
      source.recorder = source_args.require<std::string>("recorder");
      source.from_student = source_args.require<bool>("from_student");
      source.record_idx = source_args.get<int64_t>("record_idx", 0);
      source.data_idx = source_args.optional<int64_t>("data_idx");
      source.connector = source_args.get<std::string>("connector", "");
      source.connector_idx = source_args.optional<int64_t>("connector_idx");
      if (!source.connector.empty() && !connectors_.count(source.connector)) {
        std::vector<std::string> names;
        for (const auto& c : connectors_) names.push_back(c.first);
        source_args.fail("connector", "no connector named \"" + source.connector + "\"" +
                                          did_you_mean(source.connector, names) +
                                          (names.empty() ? " (the distiller has no connectors)"
                                                         : " (connectors: " + join(names, ", ") + ")"));
      }
      if (source.connector_idx && source.connector.empty()) {
        source_args.fail("connector_idx", "is given without a connector");
      }
      const RecorderManager& manager = source.from_student ? student_recorders_ : teacher_recorders_;
      if (!manager.contains(source.recorder)) {
        source_args.fail("recorder", "no " + std::string(source.from_student ? "student" : "teacher") +
                                         " recorder named \"" + source.recorder + "\"" +
                                         did_you_mean(source.recorder, manager.names()) + " (recorders: " +
                                         join(manager.names(), ", ") + ")");
      }
      source_args.finish();
      mappings_[loss_name][argument] = source;
    }
    for (const auto& argument : loss->second->arguments()) {
      if (argument.required && !mappings_[loss_name].count(argument.name)) {
        loss_mapping.fail(argument.name, "required argument of loss \"" + loss_name + "\" is not mapped");
      }
    }
  }
  for (const auto& loss : losses_) {
    if (!mappings_.count(loss.first)) mappings.fail(loss.first, "the loss has no loss_forward_mappings entry");
  }
}

void ConfigurableDistiller::prepare(torch::nn::Module& student, torch::nn::Module* teacher) {
  try {
    student_recorders_.prepare(student);
  } catch (const Error& e) {
    throw e.with_context(where_ + ".student_recorders");
  }
  if (!teacher_recorders_.empty()) {
    RAZOR_CHECK(teacher, where_, ".teacher_recorders: this algorithm has no teacher");
    try {
      teacher_recorders_.prepare(*teacher);
    } catch (const Error& e) {
      throw e.with_context(where_ + ".teacher_recorders");
    }
  }
}

Connector& ConfigurableDistiller::connector(const std::string& name) const {
  auto it = connectors_.find(name);
  if (it == connectors_.end()) {
    std::vector<std::string> names;
    for (const auto& c : connectors_) names.push_back(c.first);
    throw config_error(where_, ".connectors: no connector named \"", name, "\"", did_you_mean(name, names));
  }
  return *it->second;
}

torch::Tensor ConfigurableDistiller::fetch(const RecordSource& source) const {
  const RecorderManager& manager = source.from_student ? student_recorders_ : teacher_recorders_;
  torch::Tensor record = manager.get(source.recorder).get(source.record_idx, source.data_idx);
  if (!source.from_student && detach_teacher_records_) record = record.detach();
  if (source.connector.empty()) return record;
  std::vector<torch::Tensor> outputs = connectors_.at(source.connector)->forward(record);
  if (source.connector_idx) {
    const int64_t i = *source.connector_idx;
    RAZOR_CHECK(i >= 0 && i < static_cast<int64_t>(outputs.size()), "connector_idx ", i, " is out of range: connector \"",
                source.connector, "\" gives ", outputs.size(), " tensors");
    return outputs[i];
  }
  RAZOR_CHECK(outputs.size() == 1, "connector \"", source.connector, "\" gives ", outputs.size(),
              " tensors: pick one with connector_idx");
  return outputs[0];
}

ScheduledValues ConfigurableDistiller::scheduled_values() {
  ScheduledValues values;
  for (auto& item : losses_) {
    DistillLoss* loss = item.second.get();
    values.emplace_back("distill_losses." + item.first + ".loss_weight",
                        ScheduledValue{[loss] { return loss->loss_weight(); },
                                       [loss](double w) { loss->set_loss_weight(w); }});
  }
  return values;
}

LossMap ConfigurableDistiller::compute_distill_losses() {
  LossMap out;
  for (auto& loss : losses_) {
    LossInputs inputs;
    for (const auto& item : mappings_[loss.first]) {
      try {
        inputs[item.first] = fetch(item.second);
      } catch (const Error& e) {
        throw e.with_context(where_ + ".loss_forward_mappings." + loss.first + "." + item.first);
      }
    }
    out.emplace_back(loss.first, loss.second->forward(inputs));
  }
  return out;
}

torch::Tensor ofd_margins(const torch::Tensor& gamma, const torch::Tensor& beta) {
  auto std = gamma.detach().to(torch::kCPU, torch::kDouble).abs();
  auto mean = beta.detach().to(torch::kCPU, torch::kDouble);
  auto margins = torch::empty_like(std);
  auto s = std.accessor<double, 1>();
  auto m = mean.accessor<double, 1>();
  auto out = margins.accessor<double, 1>();
  for (int64_t c = 0; c < std.size(0); ++c) {
    const double z = -m[c] / s[c];
    const double below = 0.5 * std::erfc(-z / std::sqrt(2.0));  // P(x < 0) = Phi(-m/s)
    out[c] = below > 0.001 ? -s[c] * std::exp(-z * z / 2) / std::sqrt(2 * M_PI) / below + m[c] : -3 * s[c];
  }
  return margins.to(torch::kFloat);
}

void OFDDistiller::init_ofd_connectors(torch::nn::Module& teacher) {
  for (const auto& [loss_name, mapping] : loss_forward_mappings()) {
    for (const auto& [argument, source] : mapping) {
      if (source.from_student || source.connector.empty()) continue;
      auto* connector = dynamic_cast<OFDTeacherConnector*>(&this->connector(source.connector));
      if (!connector) continue;
      const std::string where = where_ + ".loss_forward_mappings." + loss_name + "." + argument;
      const std::string& module_path = teacher_recorders().get(source.recorder).source();
      auto* bn = dynamic_cast<nn::BatchNorm2d*>(&nn::find_module(teacher, module_path));
      RAZOR_CHECK(bn, where, ": OFD margins come from a BatchNorm2d, but teacher recorder \"", source.recorder,
                  "\" records ", module_path);
      RAZOR_CHECK(bn->weight.defined() && bn->bias.defined(), where, ": the teacher's ", module_path,
                  " has no affine weight and bias to take OFD margins from");
      connector->init_margin(ofd_margins(bn->weight, bn->bias));
    }
  }
}

Registry<ConfigurableDistiller>& distiller_registry() {
  static Registry<ConfigurableDistiller> registry("distillers");
  return registry;
}

void register_distillers() {
  static bool done = false;
  if (done) return;
  done = true;
  distiller_registry().add("ConfigurableDistiller", [](Args& args, const BuildContext& context) {
    return std::make_shared<ConfigurableDistiller>(args, context);
  });
  distiller_registry().add("OFDDistiller", [](Args& args, const BuildContext& context) {
    return std::static_pointer_cast<ConfigurableDistiller>(std::make_shared<OFDDistiller>(args, context));
  });
  distiller_registry().add("BYOTDistiller", [](Args& args, const BuildContext& context) {
    return std::static_pointer_cast<ConfigurableDistiller>(std::make_shared<BYOTDistiller>(args, context));
  });
}

}  // namespace razor
