#pragma once
// The IDX format of MNIST and Fashion-MNIST: a magic number (0, 0, element type, number of
// dimensions), big-endian uint32 dimensions, then the elements row-major.
#include <cstdint>
#include <string>
#include <vector>

namespace razor::data {

/// An IDX array of unsigned bytes (type 0x08, the only type the MNIST family uses).
struct IdxArray {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Parses IDX bytes; `name` (the file) is used in error messages.
IdxArray parse_idx(std::vector<uint8_t> bytes, const std::string& name);

/// Reads an IDX file, gzip-compressed or not. `hint` is appended to a missing-file error.
IdxArray read_idx(const std::string& path, const std::string& hint = "");

/// IDX bytes for an unsigned-byte array (for tests and tools).
std::vector<uint8_t> encode_idx(const std::vector<int64_t>& shape,
                                const std::vector<uint8_t>& data);

}  // namespace razor::data
