#pragma once
// `razor export`: turns an algorithm's checkpoint into a plain checkpoint of the model it
// produced. For a distillation run that is the student: the "architecture.*" weights with
// the prefix taken off, under a config whose `model` is the student's, so that the
// student's own config (or the exported file's config) loads it with `razor test`.
#include <functional>
#include <memory>
#include <string>

#include "engine/config.h"
#include "engine/runner.h"

namespace razor {

/// A runner on the CPU that writes nothing, its model built from `config`, given to
/// `before_loading` (a NAS supernet is fixed to its subnet there), loaded from `checkpoint`
/// (every weight required; a quantised model takes its float weights and its quantisers'
/// state from it, not from float_checkpoint) and in eval mode: what each export starts from.
std::unique_ptr<Runner> runner_for_export(std::shared_ptr<Config> config, const std::string& checkpoint,
                                          const std::function<void(Model&)>& before_loading = {});

struct ExportReport {
  std::string out;
  size_t tensors = 0;
};

/// Reads `checkpoint` (trained with `config`), checks that the exported weights load
/// strictly into a model built from `config`'s model.architecture, and writes `out`
/// atomically.
ExportReport export_architecture(const Config& config, const std::string& checkpoint, const std::string& out);

}  // namespace razor
