#pragma once
// How distillation algorithms get their teachers: a model built from another razor config
// file, and weights loaded strictly from a checkpoint.
#include <memory>
#include <string>

#include "engine/args.h"
#include "engine/model.h"

namespace razor {

/// Builds the [model] of the razor config file named by `args[key]`. A relative path is
/// taken from the working directory, else from the config file that set it (configs name
/// their teachers relative to themselves).
std::shared_ptr<Model> build_model_from_config_file(Args& args, const std::string& key, const BuildContext& context);

/// Loads `args[key]` (a razor checkpoint) into `teacher`, strictly: a checkpoint that does
/// not fit lists the mismatched keys. Without the key the teacher keeps its initial weights,
/// with a warning.
void load_teacher_checkpoint(Model& teacher, Args& args, const std::string& key);

}  // namespace razor
