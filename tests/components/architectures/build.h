#pragma once
// Builds models from config tables as the runner does, for the architecture tests.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "components/architectures/register_architectures.h"
#include "engine/model.h"

namespace razor::test {

/// `model` table -> built module (paths assigned by the ImageClassifier factory).
inline std::shared_ptr<torch::nn::Module> build_model(const Json& table,
                                                      const std::string& path = "model") {
  register_architectures();
  Args args = Args::of(table, path);
  return model_registry().build(args);
}

/// An ImageClassifier table: `backbone` + GlobalAveragePooling + LinearClsHead.
inline Json classifier(const Json& backbone, int64_t in_channels, int64_t num_classes = 10) {
  return Json{{"type", "ImageClassifier"},
              {"backbone", backbone},
              {"neck", {{"type", "GlobalAveragePooling"}}},
              {"head",
               {{"type", "LinearClsHead"},
                {"num_classes", num_classes},
                {"in_channels", in_channels},
                {"loss", {{"type", "CrossEntropyLoss"}, {"loss_weight", 1.0}}}}}};
}

inline int64_t num_parameters(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

/// The message of the error `fn` throws ("" if none).
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace razor::test
