// Deterministic randomness for dirgw-synth. std::mt19937 is portable but the std:: distributions
// are not (libstdc++ and libc++ disagree), so everything that must be byte-for-byte reproducible
// from a seed draws from SplitMix64 and the helpers here.
#pragma once

#include <cstdint>
#include <string_view>

namespace dirgw::synth {

constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr std::uint64_t combine(std::uint64_t a, std::uint64_t b) {
  return mix64(a ^ mix64(b + 0x632be59bd9b4e019ULL));
}

// FNV-1a, finished with mix64 so that similar strings land far apart.
constexpr std::uint64_t hash_string(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return mix64(h);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n); the modulo bias is below 2^-40 for the small n used here.
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }

  // Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  double range(double lo, double hi) { return lo + (hi - lo) * unit(); }

  // Approximately standard normal (Irwin-Hall of four 16-bit uniforms): one draw per call, which
  // matters when every pixel of a 200 MB cine loop gets its own noise sample.
  float normal() {
    const std::uint64_t r = next();
    const std::uint32_t s =
        static_cast<std::uint32_t>(r & 0xffff) + static_cast<std::uint32_t>((r >> 16) & 0xffff) +
        static_cast<std::uint32_t>((r >> 32) & 0xffff) + static_cast<std::uint32_t>(r >> 48);
    // Sum of four U(0,1) has mean 2 and variance 1/3.
    return (static_cast<float>(s) * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
  }

 private:
  std::uint64_t state_;
};

}  // namespace dirgw::synth
