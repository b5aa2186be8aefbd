#include "algorithms/base_algorithm.h"
#include "algorithms/distill/self_distill.h"
#include "algorithms/distill/datafree_distillation.h"
#include "algorithms/distill/single_teacher_distill.h"
#include "algorithms/nas/nas_algorithm.h"
#include "algorithms/pruning/ite_prune_algorithm.h"
#include "algorithms/quantization/mm_architecture_quant.h"
#include "algorithms/sub_model.h"
#include "components/nn/module.h"

namespace razor {

void register_algorithms() {
  static bool done = false;
  if (done) return;
  done = true;
  register_distill_algorithms();
  register_datafree_distillation();
  register_self_distill();
  register_nas_algorithms();
  register_quantization_algorithms();
  register_pruning_algorithms();
  register_sub_model();
  // `model = { type = "BaseAlgorithm", architecture = { type = "ImageClassifier", ... } }`
  model_registry().add("BaseAlgorithm", [](Args& args, const BuildContext& context) {
    Args architecture_args = args.sub("architecture");
    auto algorithm = std::make_shared<BaseAlgorithm>(
        build_model_as<Model>(architecture_args, context, "an architecture"));
    nn::assign_paths(*algorithm);
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
}

}  // namespace razor
