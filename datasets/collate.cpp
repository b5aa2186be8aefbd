#include "datasets/collate.h"

namespace razor::data {

void image_to_chw(const cv::Mat& image, float* out) {
  const int rows = image.rows, cols = image.cols, channels = image.channels();
  const double scale = image.depth() == CV_8U ? 1.0 / 255.0 : 1.0;
  if (channels == 1) {
    cv::Mat dst(rows, cols, CV_32FC1, out);
    image.convertTo(dst, CV_32F, scale);  // writes into `out`: same size and type
    return;
  }
  cv::Mat converted;
  image.convertTo(converted, CV_32F, scale);
  // mixChannels writes into preallocated planes, which here are the tensor's memory.
  std::vector<cv::Mat> planes;
  std::vector<int> from_to;
  for (int c = 0; c < channels; ++c) {
    planes.emplace_back(rows, cols, CV_32FC1, out + static_cast<size_t>(c) * rows * cols);
    from_to.push_back(c);
    from_to.push_back(c);
  }
  cv::mixChannels(&converted, 1, planes.data(), planes.size(), from_to.data(), channels);
}

Batch collate(const std::vector<Sample>& samples, const std::vector<int64_t>& indices) {
  RAZOR_ASSERT(!samples.empty() && samples.size() == indices.size());
  const cv::Mat& first = samples.front().image;
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t c = first.channels(), h = first.rows, w = first.cols;
  auto inputs = torch::empty({n, c, h, w}, torch::kFloat32);
  auto targets = torch::empty({n}, torch::kInt64);
  auto index_tensor = torch::empty({n}, torch::kInt64);
  float* data = inputs.data_ptr<float>();
  int64_t* target_data = targets.data_ptr<int64_t>();
  int64_t* index_data = index_tensor.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const cv::Mat& image = samples[static_cast<size_t>(i)].image;
    RAZOR_RUNTIME_CHECK(image.channels() == c && image.rows == h && image.cols == w,
                        "cannot batch images of different shapes: sample ", indices[i], " is ",
                        image.rows, "x", image.cols, "x", image.channels(), " but sample ",
                        indices[0], " is ", h, "x", w, "x", c,
                        " (add a Resize or crop to the pipeline)");
    RAZOR_RUNTIME_CHECK(image.depth() == CV_8U || image.depth() == CV_32F, "sample ", indices[i],
                        ": images must be uint8 or float32");
    image_to_chw(image, data + i * c * h * w);
    target_data[i] = samples[static_cast<size_t>(i)].label;
    index_data[i] = indices[static_cast<size_t>(i)];
  }
  return Batch{inputs, targets, index_tensor};
}

}  // namespace razor::data
