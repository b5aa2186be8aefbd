#pragma once
// Deterministic, portable randomness for data: seeds derived from (run seed, epoch, index)
// and draws that do not depend on the standard library's distribution implementations
// (std::uniform_int_distribution differs between libstdc++ and libc++).
#include <cstdint>
#include <random>

namespace razor::data {

/// splitmix64's finaliser: a bijective 64-bit mix with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// Combines a seed with one more value into a new seed.
inline uint64_t combine_seed(uint64_t seed, uint64_t value) { return mix64(mix64(seed) ^ value); }

/// The seed of one sample's augmentation: the same for a given (seed, epoch, index) whatever
/// the thread, worker count or rank that processes it.
inline uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return combine_seed(combine_seed(seed, static_cast<uint64_t>(epoch)),
                      static_cast<uint64_t>(index));
}

/// Uniform in [0, 1) with 53 random bits.
inline double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

/// Uniform in [0, n), unbiased (rejection of the short last interval). `n` must be > 0.
inline uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  uint64_t x;
  do {
    x = rng();
  } while (x < threshold);
  return x % n;
}

}  // namespace razor::data
