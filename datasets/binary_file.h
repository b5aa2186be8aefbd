#pragma once
// Whole-file reads of dataset files, gzip-compressed or not (zlib reads both).
#include <cstdint>
#include <string>
#include <vector>

namespace razor::data {

/// The (decompressed) bytes of `path`. A missing file is a config error naming it, with
/// `hint` appended; a read failure is a runtime error naming it.
std::vector<uint8_t> read_binary_file(const std::string& path, const std::string& hint = "");

/// `path` if it exists, else `path` without its ".gz" (or with ".gz" added) if that exists,
/// else `path` itself (so that the error names the expected file).
std::string find_data_file(const std::string& path);

}  // namespace razor::data
