// Image content for dirgw-synth: analytic phantoms that look like the real thing at a glance
// (a chest CT, a head MR, a chest radiograph, a cardiac cine loop, a chart screenshot), so that a
// rendered file is recognisable and compresses like an image rather than like noise.
// Every renderer is a pure function of its arguments: same inputs, same pixels.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dirgw::synth {

// CT: stored value = HU + 1024 (RescaleIntercept -1024, slope 1); outside the circular
// reconstruction field of view the stored value is kCtPaddingValue (PixelPaddingValue).
inline constexpr double kCtFieldOfViewMm = 500.0;
inline constexpr std::int16_t kCtPaddingValue = -2000;
// z runs 0 (lung apices) .. 1 (upper abdomen); the anatomy changes with it.
void render_ct_slice(std::span<std::int16_t> out, int rows, int cols, double z,
                     std::uint64_t noise_seed);

// MR: T1-weighted-looking axial head, values 0..4095 (12 bits stored).
inline constexpr double kMrFieldOfViewMm = 240.0;
// z runs 0 (orbits, skull base) .. 1 (vertex).
void render_mr_slice(std::span<std::uint16_t> out, int rows, int cols, double z,
                     std::uint64_t noise_seed);

// CR/DX: PA chest radiograph, 12 bits stored, MONOCHROME2 (bone bright, lungs dark). The image
// always spans a 430 mm tall detector; shift_mm moves the patient sideways between instances.
inline constexpr double kRadiographHeightMm = 430.0;
void render_chest_radiograph(std::span<std::uint16_t> out, int rows, int cols, double shift_mm,
                             std::uint64_t noise_seed);

// US: a phased-array sector with a beating cardiac chamber; 25 frames per heartbeat.
class UltrasoundCine {
 public:
  UltrasoundCine(int rows, int cols, std::uint64_t seed);
  void render_frame(std::span<std::uint8_t> out, int frame) const;

  // For the US Region Calibration module: the sector's bounding box and the pixel size.
  int region_min_x() const { return min_x_; }
  int region_min_y() const { return min_y_; }
  int region_max_x() const { return max_x_; }
  int region_max_y() const { return max_y_; }
  double cm_per_pixel() const { return cm_per_pixel_; }
  static constexpr double kDepthCm = 16.0;

 private:
  int rows_;
  int cols_;
  std::vector<float> depth_;    // 0..1 inside the sector, < 0 outside
  std::vector<float> lateral_;  // -1..1 across the sector
  std::vector<float> speckle_;  // Rayleigh-distributed multipliers, mean ~1
  int min_x_ = 0, min_y_ = 0, max_x_ = 0, max_y_ = 0;
  double cm_per_pixel_ = 0.0;
};

// SC: an RGB "screenshot" of a chart (colour-by-pixel, PlanarConfiguration 0). No text, so no
// burned-in annotation.
void render_chart_rgb(std::span<std::uint8_t> out, int rows, int cols, std::uint64_t seed);

}  // namespace dirgw::synth
