#pragma once
// Stacking samples into a Batch: images (H x W x C, uint8 or float32) become one contiguous
// N x C x H x W float32 tensor; uint8 pixels are divided by 255 (so both kinds are in
// [0, 1] units, as the transforms assume).
#include <cstdint>
#include <vector>

#include "datasets/dataset.h"
#include "engine/data.h"

namespace razor::data {

/// All images must have one shape. `indices` are the samples' dataset indices.
Batch collate(const std::vector<Sample>& samples, const std::vector<int64_t>& indices);

/// Writes one image as C x H x W floats at `out` (uint8 scaled by 1/255).
void image_to_chw(const cv::Mat& image, float* out);

}  // namespace razor::data
