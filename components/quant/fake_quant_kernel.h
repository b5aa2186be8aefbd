#pragma once
// A fused CPU kernel for per-tensor fake quantisation. ATen's own (1.13) walks the tensor one
// element at a time through libm's fmin/fmax and writes a gradient mask even under no_grad;
// it was a third of a PTQ run. This one makes a single vectorisable pass and computes the
// mask only when a gradient will need it, with ATen's exact arithmetic.
#include <cstdint>

#include "components/nn/module.h"

namespace razor::quant {

/// Whether fake_quantize_per_tensor below handles `x`: a float32 CPU tensor whose elements
/// fill one block of memory (contiguous, channels_last or any other dense layout).
bool fused_fake_quant_applies(const torch::Tensor& x);

/// ATen's fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max) with
/// [1]-shaped scale (float) and zero point (integer) tensors: round(x * (1 / scale)) + zero
/// point, rounded half to even, clamped to [quant_min, quant_max], minus the zero point, times
/// the scale; equal to ATen's bit for bit. The backward is ATen's straight-through estimator
/// (the gradient passes where the unclamped value lies in the range); no gradient for the
/// qparams. The output keeps x's memory layout. Requires fused_fake_quant_applies(x).
torch::Tensor fake_quantize_per_tensor(const torch::Tensor& x, const torch::Tensor& scale,
                                       const torch::Tensor& zero_point, int64_t quant_min, int64_t quant_max);

/// mean(|fake_quantize_per_tensor(x) - x|^power) in one pass, without the quantised tensor
/// (the error a range search compares candidates by): each element as ATen quantises it, the
/// sum in float over short chunks and in double across them. Requires
/// fused_fake_quant_applies(x).
double fake_quant_error(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& zero_point,
                        int64_t quant_min, int64_t quant_max, double power);

}  // namespace razor::quant
