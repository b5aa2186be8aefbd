#pragma once
// The loops of quantisation (MMRazor's engine/runner/quantization_loops.py):
//   PTQLoop            calibrate the observers on `calibrate_steps` batches of
//                      `calibrate_dataloader` (model in eval mode, observers and fake quant
//                      on), freeze them, optionally refine on the first `refine_steps`
//                      (8) batches: `mixed_precision = { bits, size_ratio }`
//                      (mixed_precision.h), `adaround = true | { iters, ... }` (adaround.h), then
//                      `bias_correction = true` (bias_correction.h); save `model_ptq.pth`,
//                      validate;
//   QATEpochBasedLoop  EpochBasedTrainLoop whose observers stop at epoch
//                      `disable_observer_begin` and BatchNorms freeze at `freeze_bn_begin`
//                      (1-based; <= 0 never);
//   LSQEpochBasedLoop  the same for LearnableFakeQuantize: the first batch estimates the
//                      scales statically, later ones learn them;
//   QATValLoop / QATTestLoop  metrics of the quantised model ("qat.") and of the float one
//                      ("original."), with observers off (validation data never moves a scale).
namespace razor {

void register_quant_loops();

}  // namespace razor
