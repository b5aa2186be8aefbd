#include "components/distill/recorder.h"

#include "engine/error.h"
#include "engine/strings.h"

namespace razor {

void Recorder::start() {
  buffer_.clear();
  if (!recording_) attach();
  recording_ = true;
}

void Recorder::stop() {
  if (recording_) detach();
  recording_ = false;
}

torch::Tensor Recorder::get(int64_t record_idx, std::optional<int64_t> data_idx) const {
  RAZOR_CHECK(record_idx >= 0 && record_idx < static_cast<int64_t>(buffer_.size()), "recorder of \"", source_,
              "\": record_idx ", record_idx, " is out of range (", buffer_.size(), " call(s) recorded)");
  const auto& entry = buffer_[static_cast<size_t>(record_idx)];
  if (!data_idx) {
    RAZOR_CHECK(entry.size() == 1, "recorder of \"", source_, "\": the record holds ", entry.size(),
                " tensors; give data_idx to pick one");
    return entry[0];
  }
  RAZOR_CHECK(*data_idx >= 0 && *data_idx < static_cast<int64_t>(entry.size()), "recorder of \"", source_,
              "\": data_idx ", *data_idx, " is out of range (the record holds ", entry.size(), " tensors)");
  return entry[static_cast<size_t>(*data_idx)];
}

void ModuleOutputsRecorder::prepare(torch::nn::Module& model) { module_ = &nn::find_module(model, source_); }

void ModuleOutputsRecorder::attach() {
  RAZOR_ASSERT(module_);
  handle_ = module_->add_forward_hook([this](nn::Module&, const nn::Inputs&, torch::Tensor& output) {
    push({output});
  });
}

void ModuleOutputsRecorder::detach() { handle_.remove(); }

void ModuleInputsRecorder::attach() {
  RAZOR_ASSERT(module_);
  handle_ = module_->add_forward_hook([this](nn::Module&, const nn::Inputs& inputs, torch::Tensor&) {
    push(inputs);
  });
}

void ParameterRecorder::prepare(torch::nn::Module& model) {
  std::vector<std::string> names;
  for (const auto& item : model.named_parameters()) {
    if (item.key() == source_) {
      parameter_ = item.value();
      return;
    }
    names.push_back(item.key());
  }
  throw config_error("no parameter named \"", source_, "\" in the model", did_you_mean(source_, names));
}

void ParameterRecorder::attach() { push({parameter_}); }

void TapRecorder::attach() {
  listener_ = std::make_unique<TapListener>(source_, [this](const std::vector<torch::Tensor>& values) { push(values); });
}

void TapRecorder::detach() { listener_.reset(); }

void RecorderManager::add(const std::string& name, std::shared_ptr<Recorder> recorder) {
  recorders_[name] = std::move(recorder);
}

void RecorderManager::prepare(torch::nn::Module& model) {
  for (auto& item : recorders_) {
    try {
      item.second->prepare(model);
    } catch (const Error& e) {
      throw e.with_context("recorder \"" + item.first + "\"");
    }
  }
}

void RecorderManager::start() {
  for (auto& item : recorders_) item.second->start();
}

void RecorderManager::stop() {
  for (auto& item : recorders_) item.second->stop();
}

Recorder& RecorderManager::get(const std::string& name) const {
  auto it = recorders_.find(name);
  if (it == recorders_.end()) {
    throw config_error("unknown recorder \"", name, "\"", did_you_mean(name, names()), " (recorders: ",
                       join(names(), ", "), ")");
  }
  return *it->second;
}

std::vector<std::string> RecorderManager::names() const {
  std::vector<std::string> out;
  for (const auto& item : recorders_) out.push_back(item.first);
  return out;
}

Registry<Recorder>& recorder_registry() {
  static Registry<Recorder> registry("recorders");
  return registry;
}

void register_recorders() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = recorder_registry();
  registry.add("ModuleOutputs", [](Args& args, const BuildContext&) {
    return std::make_shared<ModuleOutputsRecorder>(args.require<std::string>("source"));
  });
  registry.add("ModuleInputs", [](Args& args, const BuildContext&) {
    return std::make_shared<ModuleInputsRecorder>(args.require<std::string>("source"));
  });
  registry.add("Parameter", [](Args& args, const BuildContext&) {
    return std::make_shared<ParameterRecorder>(args.require<std::string>("source"));
  });
  registry.add("Tap", [](Args& args, const BuildContext&) {
    return std::make_shared<TapRecorder>(args.require<std::string>("source"));
  });
}

RecorderManager build_recorders(Args& args) {
  register_recorders();
  RecorderManager manager;
  for (const auto& item : args.table().items()) {
    Args recorder_args = args.sub(item.key());
    manager.add(item.key(), recorder_registry().build(recorder_args));
  }
  return manager;
}

}  // namespace razor
