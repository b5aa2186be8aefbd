#pragma once
// ShuffleNet's concat + channel shuffle of two halves as one pass. With ATen's copies it is
// two strided copies that write every other float (each one element at a time); for the
// channels_last float tensors razor trains with, a plain loop per pixel writes each output
// pixel once, in order, and vectorises. A matching kernel splits the gradient again.
#include <torch/types.h>

namespace razor {

/// out[:, 2j] = a[:, j] and out[:, 2j + 1] = b[:, j] for N x C x H x W tensors a and b of one
/// shape: shuffle_channels(cat({a, b}, 1), 2). The output has a's memory format. CPU float
/// inputs with unit channel stride (channels_last, or a channel slice of a channels_last
/// tensor) take the fused kernels, forward and backward; any other input ATen's copies.
torch::Tensor interleave_channels(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace razor
