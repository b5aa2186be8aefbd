#include "datasets/binary_file.h"

#include <zlib.h>

#include <filesystem>
#include <memory>

#include "engine/error.h"

namespace razor::data {

std::vector<uint8_t> read_binary_file(const std::string& path, const std::string& hint) {
  std::error_code error;
  RAZOR_CHECK(std::filesystem::is_regular_file(path, error), "data file ", path, " not found",
              hint);
  gzFile file = gzopen(path.c_str(), "rb");
  RAZOR_RUNTIME_CHECK(file != nullptr, "cannot open data file ", path);
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);
  gzbuffer(file, 1 << 18);

  // Presize from the file size: a good guess for plain files, a lower bound for gzip.
  std::vector<uint8_t> bytes;
  bytes.reserve(static_cast<size_t>(std::filesystem::file_size(path, error)));
  constexpr size_t kChunk = 1 << 22;
  size_t used = 0;
  for (;;) {
    if (bytes.size() < used + kChunk) bytes.resize(used + kChunk);
    const int got = gzread(file, bytes.data() + used, static_cast<unsigned>(kChunk));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw runtime_error("reading data file ", path, ": ", message ? message : "zlib error");
    }
    used += static_cast<size_t>(got);
    if (got == 0) break;
  }
  bytes.resize(used);
  return bytes;
}

std::string find_data_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::exists(path, error)) return path;
  const std::string suffix = ".gz";
  const bool gz = path.size() > suffix.size() &&
                  path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  const std::string other = gz ? path.substr(0, path.size() - suffix.size()) : path + suffix;
  if (fs::exists(other, error)) return other;
  return path;
}

}  // namespace razor::data
