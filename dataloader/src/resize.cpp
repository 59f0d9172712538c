#include "maestro/dataloader/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace maestro::dataloader {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS
constexpr double kSupport = 2.0;            // bicubic

double Bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Pillow's clip8: the sum's integer part clamped to [0, 255] (branch-free, so it vectorizes).
uint8_t Clip8(int32_t v) { return static_cast<uint8_t>(std::clamp(v >> kPrecisionBits, 0, 255)); }

// acc[i] += row[i] * weight for i < n: the inner loop of both passes. Built for AVX2 too and
// picked at run time (GCC's target_clones), since baseline x86-64 has no 32-bit vector
// multiply.
__attribute__((target_clones("avx2", "default"))) void AccumulateRow(int32_t* acc,
                                                                     const uint8_t* row,
                                                                     int32_t weight, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += row[i] * weight;
}

// dst[i] = Clip8(acc[i]) for i < n.
__attribute__((target_clones("avx2", "default"))) void StoreRow(const int32_t* acc, uint8_t* dst,
                                                                int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Clip8(acc[i]);
}

// `rows` x `cols` pixels of C channels from `in` (`in_stride` bytes apart) into `out` as
// `cols` x `rows` (column x of the source becomes row x), mirrored in x when `flip`.
template <int C>
void Transpose(const uint8_t* in, int64_t in_stride, int64_t rows, int64_t cols, bool flip,
               uint8_t* out, int64_t out_stride) {
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* row = in + y * in_stride;
    for (int64_t x = 0; x < cols; ++x) {
      uint8_t* dst = out + (flip ? cols - 1 - x : x) * out_stride + y * C;
      for (int ch = 0; ch < C; ++ch) dst[ch] = row[x * C + ch];
    }
  }
}

void TransposeAny(const uint8_t* in, int64_t in_stride, int64_t rows, int64_t cols, int64_t c,
                  bool flip, uint8_t* out, int64_t out_stride) {
  switch (c) {
    case 1:
      return Transpose<1>(in, in_stride, rows, cols, flip, out, out_stride);
    case 3:
      return Transpose<3>(in, in_stride, rows, cols, flip, out, out_stride);
    case 4:
      return Transpose<4>(in, in_stride, rows, cols, flip, out, out_stride);
    default:
      for (int64_t y = 0; y < rows; ++y) {
        for (int64_t x = 0; x < cols; ++x) {
          std::memcpy(out + (flip ? cols - 1 - x : x) * out_stride + y * c,
                      in + y * in_stride + x * c, static_cast<size_t>(c));
        }
      }
  }
}

}  // namespace

void BicubicResizer::Coefficients(int64_t in_size, double in0, double in1, int64_t out_size,
                                  Axis& axis) {
  // Pillow keeps the box in floats and divides their difference in double.
  const auto box0 = static_cast<float>(in0), box1 = static_cast<float>(in1);
  const double scale = static_cast<double>(box1 - box0) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = kSupport * filter_scale;
  axis.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  scratch_.assign(static_cast<size_t>(out_size * axis.taps), 0.0);
  axis.bounds.resize(static_cast<size_t>(out_size * 2));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = box0 + (static_cast<double>(xx) + 0.5) * scale;
    const double ss = 1.0 / filter_scale;
    auto xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    auto xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = &scratch_[static_cast<size_t>(xx * axis.taps)];
    double total = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double w = Bicubic((static_cast<double>(x + xmin) - center + 0.5) * ss);
      k[x] = w;
      total += w;
    }
    if (total != 0.0) {
      for (int64_t x = 0; x < xmax; ++x) k[x] /= total;
    }
    axis.bounds[static_cast<size_t>(xx * 2)] = static_cast<int32_t>(xmin);
    axis.bounds[static_cast<size_t>(xx * 2 + 1)] = static_cast<int32_t>(xmax);
  }
  axis.weights.resize(scratch_.size());
  for (size_t i = 0; i < scratch_.size(); ++i) {
    const double v = scratch_[i] * (1 << kPrecisionBits);
    axis.weights[i] = static_cast<int32_t>(scratch_[i] < 0 ? -0.5 + v : 0.5 + v);
  }
}

namespace {

// One horizontal pass: `rows` rows of `in` (channels c, `in_stride` bytes apart) resampled with
// the axis's coefficients into `out` (out_w pixels per row, `out_stride` bytes apart), mirrored
// when `flip`. `x_offset` is subtracted from the coefficient bounds (the first source column
// `in` holds). Pillow's arithmetic, computed by transposition: the source columns become rows
// of `columns`, each output column is then a sum of whole rows (contiguous, vectorized, as in
// the vertical pass), and the result is transposed back with the flip folded in.
void HorizontalPass(const uint8_t* in, int64_t in_stride, int64_t rows, int64_t c,
                    const std::vector<int32_t>& bounds, const std::vector<int32_t>& weights,
                    int64_t taps, int64_t x_offset, int64_t out_w, bool flip, uint8_t* out,
                    int64_t out_stride, std::vector<uint8_t>& columns,
                    std::vector<uint8_t>& resampled, std::vector<int32_t>& sums) {
  const int64_t lo = bounds[0] - x_offset;
  const int64_t hi = bounds[static_cast<size_t>((out_w - 1) * 2)] +
                     bounds[static_cast<size_t>((out_w - 1) * 2 + 1)] - x_offset;
  const int64_t column_bytes = rows * c;  // one source column, transposed
  columns.resize(static_cast<size_t>((hi - lo) * column_bytes));
  TransposeAny(in + lo * c, in_stride, rows, hi - lo, c, false, columns.data(), column_bytes);
  resampled.resize(static_cast<size_t>(out_w * column_bytes));
  sums.resize(static_cast<size_t>(column_bytes));
  int32_t* acc = sums.data();
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int64_t xmin = bounds[static_cast<size_t>(xx * 2)] - x_offset - lo;
    const int32_t count = bounds[static_cast<size_t>(xx * 2 + 1)];
    const int32_t* k = &weights[static_cast<size_t>(xx * taps)];
    std::fill(acc, acc + column_bytes, 1 << (kPrecisionBits - 1));
    for (int32_t x = 0; x < count; ++x) {
      AccumulateRow(acc, columns.data() + (xmin + x) * column_bytes, k[x], column_bytes);
    }
    StoreRow(acc, resampled.data() + xx * column_bytes, column_bytes);
  }
  // Back: row y of the output is column y of `resampled` (out_w pixels, one per row of it).
  // When enlarging, out_w exceeds the source columns: the buffer grows.
  columns.resize(std::max(columns.size(), static_cast<size_t>(rows * out_w * c)));
  TransposeAny(resampled.data(), column_bytes, out_w, rows, c, false, columns.data(), out_w * c);
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* src = columns.data() + y * out_w * c;
    uint8_t* dst = out + y * out_stride;
    if (!flip) {
      std::memcpy(dst, src, static_cast<size_t>(out_w * c));
    } else {
      for (int64_t xx = 0; xx < out_w; ++xx)
        std::memcpy(dst + (out_w - 1 - xx) * c, src + xx * c, static_cast<size_t>(c));
    }
  }
}

// One vertical pass: `bytes_per_row` bytes of each output row from the rows of `in`
// (`in_stride` apart; `y_offset` subtracted from the bounds) into `out` (`out_stride` apart).
// Whole rows are accumulated tap by tap in `sums`; the arithmetic per value is Pillow's.
void VerticalPass(const uint8_t* in, int64_t in_stride, int64_t bytes_per_row,
                  const std::vector<int32_t>& bounds, const std::vector<int32_t>& weights,
                  int64_t taps, int64_t y_offset, int64_t out_h, uint8_t* out, int64_t out_stride,
                  std::vector<int32_t>& sums) {
  sums.resize(static_cast<size_t>(bytes_per_row));
  int32_t* acc = sums.data();
  for (int64_t yy = 0; yy < out_h; ++yy) {
    const int64_t ymin = bounds[static_cast<size_t>(yy * 2)] - y_offset;
    const int32_t count = bounds[static_cast<size_t>(yy * 2 + 1)];
    const int32_t* k = &weights[static_cast<size_t>(yy * taps)];
    std::fill(acc, acc + bytes_per_row, 1 << (kPrecisionBits - 1));
    for (int32_t y = 0; y < count; ++y)
      AccumulateRow(acc, in + (ymin + y) * in_stride, k[y], bytes_per_row);
    StoreRow(acc, out + yy * out_stride, bytes_per_row);
  }
}

}  // namespace

void BicubicResizer::Resize(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                            int64_t stride, const ResizeBox& box, int64_t out_h, int64_t out_w,
                            bool flip, uint8_t* out) {
  const bool need_horizontal = out_w != width || box.x0 != 0 || box.x1 != out_w;
  const bool need_vertical = out_h != height || box.y0 != 0 || box.y1 != out_h;
  Coefficients(width, box.x0, box.x1, out_w, horizontal_);
  Coefficients(height, box.y0, box.y1, out_h, vertical_);
  const int64_t c = channels;
  const int64_t out_stride = out_w * c;
  const std::vector<int32_t>& hb = horizontal_.bounds;
  const std::vector<int32_t>& vb = vertical_.bounds;

  // Pillow 13 runs the vertical pass first when it shrinks the rows by more than twice what
  // the horizontal pass takes off the columns (found by comparing both orders with Pillow on
  // several hundred sizes: tests/dataloader/resize_test.cpp); the order changes the rounding
  // of the intermediate image, so it is part of being bit-exact.
  const double in_h = box.y1 - box.y0, in_w = box.x1 - box.x0;
  const bool vertical_first =
      need_horizontal && need_vertical && in_h > static_cast<double>(out_h) &&
      in_h - static_cast<double>(out_h) > 2 * (in_w - static_cast<double>(out_w));

  if (vertical_first) {
    // Columns [first_col, last_col) of the source feed the horizontal pass.
    const int64_t first_col = hb[0];
    const int64_t last_col =
        hb[static_cast<size_t>((out_w - 1) * 2)] + hb[static_cast<size_t>((out_w - 1) * 2 + 1)];
    const int64_t temp_stride = (last_col - first_col) * c;
    rows_.resize(static_cast<size_t>(out_h * temp_stride));
    VerticalPass(src + first_col * c, stride, temp_stride, vb, vertical_.weights, vertical_.taps, 0,
                 out_h, rows_.data(), temp_stride, sums_);
    HorizontalPass(rows_.data(), temp_stride, out_h, c, hb, horizontal_.weights, horizontal_.taps,
                   first_col, out_w, flip, out, out_stride, columns_, resampled_, sums_);
    return;
  }

  // Horizontal pass first, over the rows the vertical pass reads: [first_row, last_row).
  const int64_t first_row = vb[0];
  const int64_t last_row =
      vb[static_cast<size_t>((out_h - 1) * 2)] + vb[static_cast<size_t>((out_h - 1) * 2 + 1)];
  const uint8_t* rows = src + first_row * stride;
  int64_t rows_stride = stride;
  if (need_horizontal) {
    rows_stride = out_stride;
    rows_.resize(static_cast<size_t>((last_row - first_row) * rows_stride));
    HorizontalPass(rows, stride, last_row - first_row, c, hb, horizontal_.weights, horizontal_.taps,
                   0, out_w, flip, rows_.data(), rows_stride, columns_, resampled_, sums_);
    rows = rows_.data();
  } else if (flip) {  // no horizontal resampling: mirror the rows in a copy
    rows_stride = out_stride;
    rows_.resize(static_cast<size_t>((last_row - first_row) * rows_stride));
    for (int64_t y = 0; y < last_row - first_row; ++y) {
      const uint8_t* in = rows + y * stride;
      uint8_t* row = rows_.data() + y * rows_stride;
      for (int64_t x = 0; x < width; ++x) std::memcpy(row + (width - 1 - x) * c, in + x * c, c);
    }
    rows = rows_.data();
  }
  if (!need_vertical) {
    for (int64_t y = 0; y < out_h; ++y)
      std::memcpy(out + y * out_stride, rows + y * rows_stride, out_stride);  // identity rows
    return;
  }
  VerticalPass(rows, rows_stride, out_stride, vb, vertical_.weights, vertical_.taps, first_row,
               out_h, out, out_stride, sums_);
}

}  // namespace maestro::dataloader
