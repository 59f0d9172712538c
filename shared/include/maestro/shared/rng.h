// Counter-based randomness: a random stream is a pure function of a key (seed, epoch, sample
// index, purpose), so every sample's augmentation and mask noise come out the same whatever
// the rank count, thread count or resume point. Header-only; thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <initializer_list>

namespace maestro {

// splitmix64's finalizer: a bijective mix of 64 bits.
constexpr uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A key from several words, order-sensitive.
inline uint64_t HashKey(std::initializer_list<uint64_t> words) {
  uint64_t h = 0x6A09E667F3BCC908ULL;
  for (uint64_t w : words) h = Mix64(h ^ Mix64(w + 0x9E3779B97F4A7C15ULL));
  return h;
}

// The i-th value of the stream for `key`: Mix64 of (key, i). Cheap to construct and copy.
class CounterRng {
 public:
  explicit CounterRng(uint64_t key) : key_(key) {}
  uint64_t NextU64() { return Mix64(key_ ^ Mix64(++counter_ * 0x9E3779B97F4A7C15ULL)); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  // Uniform float in [0, 1) with 24 random bits (exactly representable).
  float UniformFloat() { return static_cast<float>(NextU64() >> 40) * 0x1.0p-24f; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply; bias below 2^-64 * n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(NextU64()) * n) >> 64);
  }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

}  // namespace maestro
