#include "datasets/cifar.h"

#include <filesystem>
#include <fstream>

#include "datasets/binary_file.h"

namespace razor::data {

namespace {

constexpr int kSide = 32;
constexpr int kPixels = 3 * kSide * kSide;

void check_split(const std::string& split) {
  RAZOR_CHECK(split == "train" || split == "test", "split: expected \"train\" or \"test\", got \"",
              split, "\"");
}

std::vector<std::string> read_names(const std::string& path, int64_t count) {
  std::vector<std::string> names;
  std::ifstream in(path);
  for (std::string line; in && std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (static_cast<int64_t>(names.size()) == count) return names;
  names.clear();
  for (int64_t i = 0; i < count; ++i) names.push_back(std::to_string(i));
  return names;
}

}  // namespace

void CIFAR::load(const std::vector<std::string>& files, int label_bytes, int label_offset,
                 int64_t num_classes) {
  const size_t record = static_cast<size_t>(label_bytes) + kPixels;
  for (const auto& path : files) {
    const std::vector<uint8_t> bytes = read_binary_file(find_data_file(path));
    RAZOR_RUNTIME_CHECK(!bytes.empty() && bytes.size() % record == 0, path, ": size ", bytes.size(),
                        " is not a multiple of the ", record,
                        "-byte CIFAR record (wrong file or truncated)");
    const size_t count = bytes.size() / record;
    const size_t first = labels_.size();
    labels_.resize(first + count);
    images_.resize((first + count) * kPixels);
    for (size_t i = 0; i < count; ++i) {
      const uint8_t* rec = bytes.data() + i * record;
      const uint8_t label = rec[label_offset];
      RAZOR_RUNTIME_CHECK(label < num_classes, path, ": label ", int(label), " of record ", i,
                          " is not below ", num_classes);
      labels_[first + i] = label;
      // Planes R, G, B -> interleaved HWC.
      auto* plane_data = const_cast<uint8_t*>(rec + label_bytes);
      cv::Mat planes[3] = {cv::Mat(kSide, kSide, CV_8UC1, plane_data),
                           cv::Mat(kSide, kSide, CV_8UC1, plane_data + kSide * kSide),
                           cv::Mat(kSide, kSide, CV_8UC1, plane_data + 2 * kSide * kSide)};
      cv::Mat hwc(kSide, kSide, CV_8UC3, images_.data() + (first + i) * kPixels);
      cv::merge(planes, 3, hwc);
    }
  }
}

Sample CIFAR::get(int64_t index) const {
  check_index(index);
  auto* pixels = const_cast<uint8_t*>(images_.data()) + index * kPixels;
  return {cv::Mat(kSide, kSide, CV_8UC3, pixels), labels_[static_cast<size_t>(index)]};
}

CIFAR10::CIFAR10(const std::string& data_root, const std::string& split) {
  check_split(split);
  std::vector<std::string> files;
  if (split == "train") {
    for (int i = 1; i <= 5; ++i)
      files.push_back(data_root + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(data_root + "/test_batch.bin");
  }
  classes_ = {"airplane", "automobile", "bird",  "cat",  "deer",
              "dog",      "frog",       "horse", "ship", "truck"};
  load(files, 1, 0, 10);
}

CIFAR100::CIFAR100(const std::string& data_root, const std::string& split, bool fine) {
  check_split(split);
  const int64_t count = fine ? 100 : 20;
  classes_ =
      read_names(data_root + (fine ? "/fine_label_names.txt" : "/coarse_label_names.txt"), count);
  // Records are <coarse label> <fine label> <pixels>.
  load({data_root + "/" + split + ".bin"}, 2, fine ? 1 : 0, count);
}

std::vector<uint8_t> encode_cifar_record(const std::vector<uint8_t>& labels,
                                         const std::vector<uint8_t>& chw_pixels) {
  std::vector<uint8_t> out(labels);
  out.insert(out.end(), chw_pixels.begin(), chw_pixels.end());
  return out;
}

}  // namespace razor::data
