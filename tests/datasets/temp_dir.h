#pragma once
// Shared by the datasets tests: a temporary folder removed at scope exit, and a helper that
// writes gzip files.
#include <torch/torch.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace razor::test {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "razor_data_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
}

/// An H x W x C image as a torch tensor (copied), uint8 or float32.
inline torch::Tensor to_tensor(const cv::Mat& image) {
  cv::Mat dense = image.clone();
  auto type = dense.depth() == CV_8U ? torch::kUInt8 : torch::kFloat32;
  return torch::from_blob(dense.data, {dense.rows, dense.cols, dense.channels()}, type).clone();
}

}  // namespace razor::test
