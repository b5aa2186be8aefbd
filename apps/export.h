#pragma once
// `razor export`: turns an algorithm's checkpoint into a plain checkpoint of the model it
// produced. For a distillation run that is the student: the "architecture.*" weights with
// the prefix taken off, under a config whose `model` is the student's, so that the
// student's own config (or the exported file's config) loads it with `razor test`.
#include <string>

#include "engine/config.h"

namespace razor {

struct ExportReport {
  std::string out;
  size_t tensors = 0;
};

/// Reads `checkpoint` (trained with `config`), checks that the exported weights load
/// strictly into a model built from `config`'s model.architecture, and writes `out`
/// atomically.
ExportReport export_architecture(const Config& config, const std::string& checkpoint, const std::string& out);

}  // namespace razor
