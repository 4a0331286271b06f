#include "phantoms.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "rng.h"

namespace dirgw::synth {
namespace {

double smoothstep(double edge0, double edge1, double x) {
  const double t = std::clamp((x - edge0) / (edge1 - edge0), 0.0, 1.0);
  return t * t * (3.0 - 2.0 * t);
}

// A raster in millimetres: pixel centres sit at ((c + 0.5 - cols/2) * spacing, ...), x to the
// right (patient left), y down (posterior for axial slices, inferior for radiographs).
template <typename T>
class Canvas {
 public:
  Canvas(std::span<T> pixels, int rows, int cols, double spacing_mm)
      : px_(pixels), rows_(rows), cols_(cols), s_(spacing_mm) {}

  double x_of(int c) const { return (c + 0.5 - cols_ / 2.0) * s_; }
  double y_of(int r) const { return (r + 0.5 - rows_ / 2.0) * s_; }

  void fill(T value) { std::fill(px_.begin(), px_.end(), value); }

  // Filled axis-aligned ellipse, painted row by row from its analytic span: cost is its area,
  // not the image's, which keeps 5000-slice series cheap.
  void ellipse(double cx, double cy, double ax, double ay, T value) {
    if (ax <= 0.0 || ay <= 0.0) return;
    const int r0 = row_at_or_after(cy - ay);
    const int r1 = row_at_or_before(cy + ay);
    for (int r = r0; r <= r1; ++r) {
      const double dy = (y_of(r) - cy) / ay;
      const double t = 1.0 - dy * dy;
      if (t <= 0.0) continue;
      const double half = ax * std::sqrt(t);
      span(r, col_at_or_after(cx - half), col_at_or_before(cx + half), value);
    }
  }

  void rect(double x0, double y0, double x1, double y1, T value) {
    for (int r = row_at_or_after(y0); r <= row_at_or_before(y1); ++r) {
      span(r, col_at_or_after(x0), col_at_or_before(x1), value);
    }
  }

 private:
  static int clamp_index(double v, int n) {
    return static_cast<int>(std::clamp(v, -1.0, static_cast<double>(n)));
  }
  int row_at_or_after(double y) const {
    return std::max(0, clamp_index(std::ceil(y / s_ + rows_ / 2.0 - 0.5), rows_));
  }
  int row_at_or_before(double y) const {
    return std::min(rows_ - 1, clamp_index(std::floor(y / s_ + rows_ / 2.0 - 0.5), rows_));
  }
  int col_at_or_after(double x) const {
    return std::max(0, clamp_index(std::ceil(x / s_ + cols_ / 2.0 - 0.5), cols_));
  }
  int col_at_or_before(double x) const {
    return std::min(cols_ - 1, clamp_index(std::floor(x / s_ + cols_ / 2.0 - 0.5), cols_));
  }
  void span(int r, int c0, int c1, T value) {
    if (c0 > c1) return;
    T* row = px_.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(cols_);
    std::fill(row + c0, row + c1 + 1, value);
  }

  std::span<T> px_;
  int rows_;
  int cols_;
  double s_;
};

std::int16_t hu(double value) { return static_cast<std::int16_t>(std::lround(value + 1024.0)); }

// Fixed pseudo-random layout (vessels, ribs): part of the anatomy, so independent of the seed.
double layout(int k, int salt) {
  return static_cast<double>(mix64(static_cast<std::uint64_t>(k) * 131 + salt) >> 11) * 0x1.0p-53;
}

}  // namespace

void render_ct_slice(std::span<std::int16_t> out, int rows, int cols, double z,
                     std::uint64_t noise_seed) {
  const double s = kCtFieldOfViewMm / cols;
  Canvas<std::int16_t> cv(out, rows, cols, s);
  cv.fill(kCtPaddingValue);
  const double fov = kCtFieldOfViewMm / 2.0;
  cv.ellipse(0, 0, fov, fov, hu(-1000));

  // Patient table below the patient.
  cv.rect(-200, 150, 200, 158, hu(150));

  const double girth = 1.0 + 0.06 * z;
  const double bx = 165 * girth, by = 118 * girth, bcy = 10;
  cv.ellipse(0, bcy, bx + 12, by + 10, hu(-100));  // subcutaneous fat
  cv.ellipse(0, bcy, bx, by, hu(50));              // muscle wall
  cv.ellipse(0, bcy, bx - 14, by - 12, hu(30));    // mediastinum / abdomen

  const double liver = smoothstep(0.5, 0.85, z);
  if (liver > 0.02) {
    cv.ellipse(-55, 15, 105 * liver, 85 * liver, hu(60));
    cv.ellipse(75, -10, 45 * liver, 35 * liver, hu(15));    // stomach
    cv.ellipse(75, -35, 25 * liver, 10 * liver, hu(-950));  // gas bubble
  }

  const double lung = (0.35 + 0.65 * smoothstep(0.0, 0.3, z)) * (1.0 - smoothstep(0.6, 0.88, z));
  if (lung > 0.03) {
    for (int side : {-1, 1}) {
      const double lx = side * 85.0, lax = 72 * lung, lay = 95 * lung;
      cv.ellipse(lx, 0, lax, lay, hu(-860));
      for (int k = 0; k < 14; ++k) {  // pulmonary vessels, drifting with z
        const double angle = 2 * std::numbers::pi * layout(k, side + 7) + 2.5 * z;
        const double radius = 0.15 + 0.7 * layout(k, side + 11);
        const double size = 2.0 + 3.0 * layout(k, side + 13) * (1.0 - 0.6 * radius);
        cv.ellipse(lx + lax * radius * std::cos(angle), lay * radius * std::sin(angle), size, size,
                   hu(40));
      }
    }
  }

  const double heart = std::max(0.0, 1.0 - std::pow((z - 0.55) / 0.25, 2));
  if (heart > 0.02) {
    const double h = std::sqrt(heart);
    cv.ellipse(20, -5, 72 * h, 58 * h, hu(40));
    cv.ellipse(40, 0, 25 * h, 22 * h, hu(250));  // contrast-filled left ventricle
  }
  if (z > 0.12 && z < 0.5) cv.ellipse(-8, -35, 15, 15, hu(250));  // ascending aorta
  if (z > 0.3 && z < 0.45) cv.ellipse(22, -30, 13, 13, hu(230));  // pulmonary trunk
  cv.ellipse(36, 48, 12, 12, hu(250));                            // descending aorta
  if (z < 0.75) cv.ellipse(0, bcy - by + 10, 15, 7, hu(450));     // sternum

  // Vertebra: cortical shell, cancellous body, posterior arch, spinal canal.
  cv.ellipse(0, 78, 22, 20, hu(700));
  cv.ellipse(0, 78, 18, 16, hu(230));
  cv.ellipse(0, 110, 28, 10, hu(600));
  cv.ellipse(0, 126, 5, 12, hu(600));
  cv.ellipse(0, 103, 9, 8, hu(25));

  // Ribs are oblique, so each axial slice cuts a different subset of them.
  constexpr std::array<double, 8> kRibDegrees = {20, 45, 135, 160, 200, 225, 315, 340};
  for (int k = 0; k < static_cast<int>(kRibDegrees.size()); ++k) {
    const double angle = kRibDegrees[k] * std::numbers::pi / 180.0;
    if (std::sin(2 * std::numbers::pi * (6.0 * z + 0.13 * k)) < -0.2) continue;
    const double rx = (bx - 8) * std::cos(angle), ry = bcy + (by - 7) * std::sin(angle);
    cv.ellipse(rx, ry, 9, 6, hu(650));
    cv.ellipse(rx, ry, 5, 3, hu(250));
  }

  // Quantum noise, only inside the field of view.
  Rng rng(noise_seed);
  for (std::int16_t& v : out) {
    if (v == kCtPaddingValue) continue;
    const float noisy = static_cast<float>(v) + 12.0f * rng.normal();
    v = static_cast<std::int16_t>(std::clamp(std::lround(noisy), -1024L, 32767L));
  }
}

void render_mr_slice(std::span<std::uint16_t> out, int rows, int cols, double z,
                     std::uint64_t noise_seed) {
  const double s = kMrFieldOfViewMm / cols;
  Canvas<std::uint16_t> cv(out, rows, cols, s);
  cv.fill(0);

  const double scale = std::sqrt(std::max(0.0, 1.0 - std::pow((z - 0.35) / 0.75, 2)));
  const double ax = 76 * scale, ay = 96 * scale, cy = 5;
  cv.ellipse(0, cy, ax, ay, 1600);           // scalp fat
  cv.ellipse(0, cy, ax - 5, ay - 5, 150);    // skull
  cv.ellipse(0, cy, ax - 10, ay - 10, 350);  // CSF
  cv.ellipse(0, cy, ax - 13, ay - 13, 820);  // grey matter
  const double wm = smoothstep(0.1, 0.3, z) * (1.0 - smoothstep(0.8, 0.97, z));
  const double wax = (ax - 24) * wm, way = (ay - 26) * wm;
  cv.ellipse(0, cy, wax, way, 1200);  // white matter
  // Gyri (white matter fingers) and sulci (CSF clefts from the surface) make the cortex folded.
  constexpr int kGyri = 30;
  for (int k = 0; k < kGyri; ++k) {
    const double angle = 2 * std::numbers::pi * (k + 0.5 * layout(k, 3)) / kGyri + 0.8 * z;
    if (wm > 0.05) {
      cv.ellipse(wax * std::cos(angle), cy + way * std::sin(angle), 6 * wm, 6 * wm, 1200);
    }
    const double sulcus = angle + std::numbers::pi / kGyri;
    for (double depth : {3.0, 6.0, 9.0}) {
      const double gx = std::max(0.0, ax - 13 - depth), gy = std::max(0.0, ay - 13 - depth);
      cv.ellipse(gx * std::cos(sulcus), cy + gy * std::sin(sulcus), 1.8, 1.8, 350);
    }
  }
  cv.ellipse(0, cy - 10, 1.5, (ay - 14) * 0.9, 350);  // interhemispheric fissure

  if (z < 0.25) {  // skull base: orbits and cerebellum
    const double o = 1.0 - smoothstep(0.15, 0.25, z);
    for (int side : {-1, 1}) {
      cv.ellipse(side * 30.0, -72, 17 * o, 17 * o, 1600);
      cv.ellipse(side * 30.0, -74, 12 * o, 12 * o, 250);
    }
    cv.ellipse(0, 50, 48 * o, 28 * o, 900);
    cv.ellipse(0, 50, 3, 28 * o, 400);
  }
  const double vent = std::max(0.0, 1.0 - std::pow((z - 0.52) / 0.17, 2));
  if (vent > 0.02) {
    for (int side : {-1, 1}) cv.ellipse(side * 9.0, -3, 5 + 2 * vent, 26 * vent, 300);
  }

  // Receive-coil shading (separable, so it costs one multiply per pixel) and Rician-like noise.
  std::vector<float> row_gain(static_cast<std::size_t>(rows)),
      col_gain(static_cast<std::size_t>(cols));
  for (int r = 0; r < rows; ++r) row_gain[r] = static_cast<float>(1.0 + 0.10 * cv.y_of(r) / 120.0);
  for (int c = 0; c < cols; ++c) {
    const double x = cv.x_of(c) / 120.0;
    col_gain[c] = static_cast<float>(1.0 - 0.06 * x * x);
  }
  Rng rng(noise_seed);
  std::size_t i = 0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c, ++i) {
      const float signal = static_cast<float>(out[i]) * row_gain[r] * col_gain[c];
      const float noisy = std::fabs(signal + 18.0f * rng.normal());
      out[i] = static_cast<std::uint16_t>(std::min(4095L, std::lround(noisy)));
    }
  }
}

void render_chest_radiograph(std::span<std::uint16_t> out, int rows, int cols, double shift_mm,
                             std::uint64_t noise_seed) {
  const double s = kRadiographHeightMm / rows;
  const double half_w = cols * s / 2.0, half_h = rows * s / 2.0;
  constexpr int kRibs = 10;

  // Posterior ribs as parabolic arcs: y = y0 - 0.35|x| + 0.0028 x^2, 9 mm thick.
  auto rib_y = [](int k, double ax_mm) {
    return -175.0 + 27.0 * k - 0.35 * ax_mm + 0.0028 * ax_mm * ax_mm;
  };

  Rng rng(noise_seed);
  std::size_t i = 0;
  for (int r = 0; r < rows; ++r) {
    const double y = (r + 0.5) * s - half_h;
    // Torso half-width: neck, shoulders, chest.
    double w = 165.0;
    if (y < -185) {
      w = 55.0;
    } else if (y < -150) {
      w = 55.0 + (y + 185.0) / 35.0 * 125.0;
    } else if (y < -60) {
      w = 180.0 - (y + 150.0) / 90.0 * 15.0;
    }
    for (int c = 0; c < cols; ++c, ++i) {
      const double x = (c + 0.5) * s - half_w - shift_mm;
      const double ax_mm = std::fabs(x);
      double att = 0.0;
      if (ax_mm < w) {
        att += 0.9 * std::sqrt(1.0 - (x / w) * (x / w));
        // Lungs lower attenuation; the heart and the diaphragm add it back.
        const double lx = (ax_mm - 80.0) / 64.0, ly = (y + 10.0) / 150.0;
        const double lung = 1.0 - lx * lx - ly * ly;
        if (lung > 0.0) att -= 0.5 * std::sqrt(lung);
        const double hx = (x - 25.0) / 85.0, hy = (y - 70.0) / 70.0;
        const double heart = 1.0 - hx * hx - hy * hy;
        if (heart > 0.0) att += 0.35 * std::sqrt(heart);
        if (y > 120.0) att += 0.3 * smoothstep(120.0, 160.0, y - 0.002 * x * x);
        att += 0.2 * (1.0 - smoothstep(25.0, 45.0, ax_mm)) *
               (1.0 - smoothstep(60.0, 100.0, y));  // mediastinum
        att += 0.28 * (1.0 - smoothstep(16.0, 24.0, ax_mm)) *
               (0.85 + 0.15 * std::cos(y * 0.2));  // vertebrae
        if (ax_mm > 12.0 && ax_mm < w * 0.95) {
          for (int k = 0; k < kRibs; ++k) {
            const double d = (y - rib_y(k, ax_mm)) / 4.5;
            if (d > -1.0 && d < 1.0) att += 0.12 * (1.0 - d * d);
          }
          const double dc = (y - (-160.0 + 0.0012 * x * x)) / 6.0;  // clavicles
          if (ax_mm > 20.0 && ax_mm < 150.0 && dc > -1.0 && dc < 1.0) att += 0.2 * (1.0 - dc * dc);
        }
      }
      // Collimator blades: the unexposed border is bright.
      const double edge =
          std::min(half_w - std::fabs((c + 0.5) * s - half_w), half_h - std::fabs(y));
      if (edge < 8.0) att = 1.6;
      const double value = 4095.0 * (1.0 - std::exp(-1.5 * att)) + 14.0 * rng.normal();
      out[i] = static_cast<std::uint16_t>(std::clamp(std::lround(value), 0L, 4095L));
    }
  }
}

UltrasoundCine::UltrasoundCine(int rows, int cols, std::uint64_t seed) : rows_(rows), cols_(cols) {
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  depth_.assign(n, -1.0f);
  lateral_.assign(n, 0.0f);
  speckle_.resize(n);

  const double apex_x = cols / 2.0, apex_y = -0.04 * rows;
  const double r_min = 0.1 * rows, r_max = 1.0 * rows;
  const double half_angle = 38.0 * std::numbers::pi / 180.0;
  cm_per_pixel_ = kDepthCm / (r_max - r_min);
  min_x_ = cols;
  min_y_ = rows;
  max_x_ = 0;
  max_y_ = 0;

  Rng rng(seed);
  std::size_t i = 0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c, ++i) {
      const double dx = c + 0.5 - apex_x, dy = r + 0.5 - apex_y;
      const double radius = std::sqrt(dx * dx + dy * dy);
      const double theta = std::atan2(dx, dy);
      // Rayleigh amplitude with unit mean: sqrt(-2 ln u) has mean sqrt(pi/2).
      const double u = std::max(rng.unit(), 1e-12);
      speckle_[i] = static_cast<float>(std::sqrt(-2.0 * std::log(u)) / 1.2533);
      if (radius < r_min || radius > r_max || std::fabs(theta) > half_angle) continue;
      depth_[i] = static_cast<float>((radius - r_min) / (r_max - r_min));
      lateral_[i] = static_cast<float>(theta / half_angle);
      min_x_ = std::min(min_x_, c);
      max_x_ = std::max(max_x_, c);
      min_y_ = std::min(min_y_, r);
      max_y_ = std::max(max_y_, r);
    }
  }
  // Real speckle is a few pixels wide and longer across the beam than along it: blur the white
  // Rayleigh field 5 wide by 2 high, square it back to some contrast, restore unit mean.
  std::vector<float> blurred(n, 0.0f);
  double sum = 0.0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      float acc = 0.0f;
      int count = 0;
      for (int dr = 0; dr <= 1 && r + dr < rows; ++dr) {
        for (int dc = -2; dc <= 2; ++dc) {
          if (c + dc < 0 || c + dc >= cols) continue;
          acc += speckle_[static_cast<std::size_t>(r + dr) * static_cast<std::size_t>(cols) +
                          static_cast<std::size_t>(c + dc)];
          ++count;
        }
      }
      const float v = acc / static_cast<float>(count);
      blurred[static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) +
              static_cast<std::size_t>(c)] = v * v;
      sum += static_cast<double>(v) * v;
    }
  }
  const auto norm = static_cast<float>(static_cast<double>(n) / std::max(sum, 1e-9));
  for (std::size_t k = 0; k < n; ++k) speckle_[k] = blurred[k] * norm;

  if (max_x_ < min_x_) {  // image too small to contain any of the sector
    min_x_ = min_y_ = 0;
    max_x_ = cols - 1;
    max_y_ = rows - 1;
  }
}

void UltrasoundCine::render_frame(std::span<std::uint8_t> out, int frame) const {
  const double phase = 2.0 * std::numbers::pi * frame / 25.0;
  const float beat = static_cast<float>(std::sin(phase));
  // Ventricle (centre, radii) in (lateral, depth) units; it contracts while the atrium fills.
  const float vx = 0.05f, vy = 0.52f, vrx = 0.36f * (1.0f + 0.12f * beat),
              vry = 0.22f * (1.0f + 0.12f * beat);
  const float ax = -0.12f, ay = 0.86f, arx = 0.26f * (1.0f - 0.1f * beat),
              ary = 0.09f * (1.0f - 0.1f * beat);
  const int wobble = static_cast<int>(std::lround(1.5 * std::sin(phase)));

  std::size_t i = 0;
  for (int r = 0; r < rows_; ++r) {
    const std::size_t row_start = static_cast<std::size_t>(r) * static_cast<std::size_t>(cols_);
    for (int c = 0; c < cols_; ++c, ++i) {
      const float d = depth_[i];
      if (d < 0.0f) {
        out[i] = 0;
        continue;
      }
      const float a = lateral_[i];
      float echo = 0.42f;
      const float layer = (d - (0.17f + 0.04f * a * a)) / 0.015f;  // pericardium
      echo += 0.6f * std::max(0.0f, 1.0f - layer * layer);
      if (d < 0.04f) echo += 0.3f;  // near-field clutter
      const float ex = (a - vx) / vrx, ey = (d - vy) / vry;
      const float ev = ex * ex + ey * ey;
      if (ev < 1.0f) {
        echo = 0.05f;  // blood pool
      } else if (ev < 1.35f) {
        echo += 0.35f;  // myocardium
      }
      const float fx = (a - ax) / arx, fy = (d - ay) / ary;
      if (fx * fx + fy * fy < 1.0f) echo = 0.05f;
      echo *= 1.1f - 0.5f * d;  // depth attenuation left after time-gain compensation
      int sc = c + wobble;
      sc = sc < 0 ? 0 : (sc >= cols_ ? cols_ - 1 : sc);
      const float v = 255.0f * echo * 0.75f * speckle_[row_start + static_cast<std::size_t>(sc)];
      out[i] = static_cast<std::uint8_t>(std::clamp(static_cast<int>(v), 0, 255));
    }
  }
}

void render_chart_rgb(std::span<std::uint8_t> out, int rows, int cols, std::uint64_t seed) {
  Rng rng(seed);
  constexpr std::array<std::array<std::uint8_t, 3>, 6> kPalette = {{{230, 85, 60},
                                                                    {250, 190, 50},
                                                                    {90, 190, 110},
                                                                    {70, 150, 230},
                                                                    {170, 110, 220},
                                                                    {240, 120, 180}}};
  std::array<double, 6> bar_height{};
  for (double& h : bar_height) h = rng.range(0.2, 0.95);
  const double freq = rng.range(2.0, 5.0), phase = rng.range(0.0, 6.28);

  std::vector<int> curve_row(static_cast<std::size_t>(cols));
  for (int c = 0; c < cols; ++c) {
    const double t = static_cast<double>(c) / cols;
    curve_row[c] =
        static_cast<int>(rows * (0.55 - 0.25 * std::sin(freq * 2 * std::numbers::pi * t + phase)));
  }
  const int header = std::max(1, rows / 12);
  const int grid = std::max(4, rows / 8);
  std::size_t i = 0;
  for (int r = 0; r < rows; ++r) {
    const double fy = static_cast<double>(r) / rows;
    for (int c = 0; c < cols; ++c, i += 3) {
      const double fx = static_cast<double>(c) / cols;
      std::array<std::uint8_t, 3> px = {static_cast<std::uint8_t>(20 + 20 * fy),
                                        static_cast<std::uint8_t>(24 + 24 * fy),
                                        static_cast<std::uint8_t>(40 + 40 * fy)};
      if (r < header) {
        px = {0, 90, 140};
      } else if (r % grid == 0 || c % grid == 0) {
        px = {70, 80, 110};
      }
      if (fx >= 0.06 && fx < 0.6 && r >= header) {
        const int bar = static_cast<int>((fx - 0.06) / 0.09);
        const double within = (fx - 0.06) - bar * 0.09;
        if (bar < 6 && within > 0.012 && fy > 1.0 - 0.85 * bar_height[bar] && fy < 0.95) {
          px = kPalette[bar];
        }
      }
      if (fx >= 0.65 && fx < 0.95 && std::abs(r - curve_row[c]) <= std::max(1, rows / 200)) {
        px = {255, 240, 120};
      }
      out[i] = px[0];
      out[i + 1] = px[1];
      out[i + 2] = px[2];
    }
  }
}

}  // namespace dirgw::synth
