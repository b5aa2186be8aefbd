#include "datasets/synthetic.h"

#include <opencv2/imgproc.hpp>

#include "datasets/random.h"

namespace razor::data {

Synthetic::Synthetic(Options options) : options_(std::move(options)) {
  RAZOR_CHECK(options_.num_samples > 0, "num_samples: expected > 0, got ", options_.num_samples);
  RAZOR_CHECK(options_.num_classes > 0, "num_classes: expected > 0, got ", options_.num_classes);
  RAZOR_CHECK(options_.shape.size() == 3 && options_.shape[0] > 0 && options_.shape[0] <= 4 &&
                  options_.shape[1] > 0 && options_.shape[2] > 0,
              "shape: expected [C, H, W] with 1 <= C <= 4 and H, W > 0");
  RAZOR_CHECK(options_.noise >= 0.0, "noise: expected >= 0, got ", options_.noise);
  const int channels = static_cast<int>(options_.shape[0]);
  const int height = static_cast<int>(options_.shape[1]);
  const int width = static_cast<int>(options_.shape[2]);
  for (int64_t c = 0; c < options_.num_classes; ++c) {
    // Random values on a coarse 4 x 4 grid, upsampled: smooth, distinct class patterns.
    cv::RNG rng(combine_seed(0x9A77E4Eull, static_cast<uint64_t>(c)));
    cv::Mat coarse(4, 4, CV_32FC(channels));
    rng.fill(coarse, cv::RNG::UNIFORM, cv::Scalar::all(0.0), cv::Scalar::all(1.0));
    cv::Mat prototype;
    cv::resize(coarse, prototype, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
    prototypes_.push_back(prototype);
  }
}

Sample Synthetic::get(int64_t index) const {
  check_index(index);
  const int64_t label = index % options_.num_classes;
  const cv::Mat& prototype = prototypes_[static_cast<size_t>(label)];
  cv::Mat image(prototype.size(), prototype.type());
  // cv::RNG's generator is fully specified, so the noise is the same on every platform.
  cv::RNG rng(sample_seed(options_.seed, 0, index));
  rng.fill(image, cv::RNG::NORMAL, cv::Scalar::all(0.0), cv::Scalar::all(options_.noise));
  image += prototype;
  return {image, label};
}

std::vector<std::string> Synthetic::classes() const {
  std::vector<std::string> names;
  for (int64_t c = 0; c < options_.num_classes; ++c) names.push_back(std::to_string(c));
  return names;
}

}  // namespace razor::data
