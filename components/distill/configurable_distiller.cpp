#include "components/distill/configurable_distiller.h"

#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

ConfigurableDistiller::ConfigurableDistiller(Args& args) : torch::nn::Module("ConfigurableDistiller"), where_(args.where()) {
  register_distill_losses();
  if (args.has("connectors")) args.fail("connectors", "connectors are not available in this razor yet");
  if (args.has("distill_deliveries")) args.fail("distill_deliveries", "deliveries are not available in this razor yet");
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

torch::Tensor ConfigurableDistiller::fetch(const RecordSource& source) const {
  const RecorderManager& manager = source.from_student ? student_recorders_ : teacher_recorders_;
  return manager.get(source.recorder).get(source.record_idx, source.data_idx);
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

Registry<ConfigurableDistiller>& distiller_registry() {
  static Registry<ConfigurableDistiller> registry("distillers");
  return registry;
}

void register_distillers() {
  static bool done = false;
  if (done) return;
  done = true;
  distiller_registry().add("ConfigurableDistiller", [](Args& args, const BuildContext&) {
    return std::make_shared<ConfigurableDistiller>(args);
  });
}

}  // namespace razor
