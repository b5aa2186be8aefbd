#pragma once
// Recorders keep what a model computes during a forward pass, by name, for distillation
// losses: a module's outputs or inputs (through razor's module hooks), a parameter, or a tap.
// They attach on start() and detach on stop(), so nothing stays hooked between passes, and
// keep one entry per call (`record_idx` picks the k-th call; `data_idx` an element of it).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "components/nn/tap.h"
#include "components/nn/module.h"
#include "engine/registry.h"

namespace razor {

class Recorder {
 public:
  explicit Recorder(std::string source) : source_(std::move(source)) {}
  virtual ~Recorder() = default;

  /// Binds to `model`; a source that does not exist is a config error naming the nearest.
  virtual void prepare(torch::nn::Module& model) = 0;
  /// Clears the buffer and attaches.
  void start();
  /// Detaches (the buffer stays readable).
  void stop();
  bool recording() const { return recording_; }

  const std::string& source() const { return source_; }
  /// One entry per recorded call; each entry is the call's tensors (inputs, or one output).
  const std::vector<std::vector<torch::Tensor>>& data() const { return buffer_; }

  /// The `record_idx`-th call's record, element `data_idx` if given. A record of several
  /// tensors needs a data_idx; indices out of range are errors naming them.
  torch::Tensor get(int64_t record_idx = 0, std::optional<int64_t> data_idx = std::nullopt) const;

 protected:
  virtual void attach() = 0;
  virtual void detach() = 0;
  void push(std::vector<torch::Tensor> entry) { buffer_.push_back(std::move(entry)); }

  std::string source_;
  std::vector<std::vector<torch::Tensor>> buffer_;
  bool recording_ = false;
};

/// Outputs of the module at `source` ("backbone.layer3.0.conv1"; "" = the model itself is not
/// hookable: use a tap).
class ModuleOutputsRecorder : public Recorder {
 public:
  using Recorder::Recorder;
  void prepare(torch::nn::Module& model) override;

 protected:
  void attach() override;
  void detach() override;
  nn::Module* module_ = nullptr;
  nn::HookHandle handle_;
};

/// Inputs of the module at `source`, as a list (a loss module's {scores, target}).
class ModuleInputsRecorder : public ModuleOutputsRecorder {
 public:
  using ModuleOutputsRecorder::ModuleOutputsRecorder;

 protected:
  void attach() override;
};

/// The parameter at `source` ("head.fc.weight"), recorded once per start().
class ParameterRecorder : public Recorder {
 public:
  using Recorder::Recorder;
  void prepare(torch::nn::Module& model) override;

 protected:
  void attach() override;
  void detach() override {}
  torch::Tensor parameter_;
};

/// Values published with tap(source, ...).
class TapRecorder : public Recorder {
 public:
  using Recorder::Recorder;
  void prepare(torch::nn::Module&) override {}

 protected:
  void attach() override;
  void detach() override;
  std::unique_ptr<TapListener> listener_;
};

/// A named set of recorders started and stopped together (MMRazor's RecorderManager).
class RecorderManager {
 public:
  void add(const std::string& name, std::shared_ptr<Recorder> recorder);
  void prepare(torch::nn::Module& model);
  void start();
  void stop();
  bool contains(const std::string& name) const { return recorders_.count(name) > 0; }
  /// The recorder called `name`; unknown names are a config error listing the known ones.
  Recorder& get(const std::string& name) const;
  std::vector<std::string> names() const;
  bool empty() const { return recorders_.empty(); }

 private:
  std::map<std::string, std::shared_ptr<Recorder>> recorders_;
};

/// Starts a manager's recorders for a scope and stops them at its end, even on an exception.
class RecordingScope {
 public:
  explicit RecordingScope(RecorderManager& manager) : manager_(manager) { manager_.start(); }
  ~RecordingScope() { manager_.stop(); }
  RecordingScope(const RecordingScope&) = delete;
  RecordingScope& operator=(const RecordingScope&) = delete;

 private:
  RecorderManager& manager_;
};

/// "recorders": ModuleOutputs, ModuleInputs, Parameter, Tap (each with `source`).
Registry<Recorder>& recorder_registry();
void register_recorders();

/// Builds every `{name = {type, source}}` entry of `args` (a table of tables).
RecorderManager build_recorders(Args& args);

}  // namespace razor
