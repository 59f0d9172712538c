// Pillow's bicubic resampling (Image.resize(size, Image.BICUBIC, box)), bit for bit: the same
// coefficients (a = -0.5, support widened by the scale when shrinking, i.e. antialiased), the
// same 22-bit fixed-point arithmetic and rounding, horizontal pass first over only the rows the
// vertical pass needs. This is what torchvision's RandomResizedCrop runs on PIL images, so the
// loader's crops equal torchvision's. A horizontal flip can be folded into the horizontal pass.
//
// A BicubicResizer keeps its coefficient and intermediate buffers between calls: after the
// first images of a size it allocates nothing. Not thread-safe: one per thread.
#pragma once

#include <cstdint>
#include <vector>

namespace maestro::dataloader {

// A box in source pixels (Pillow's `box`: x0, y0, x1, y1; fractional values allowed).
struct ResizeBox {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

class BicubicResizer {
 public:
  // Resamples `box` of the HWC uint8 image `src` (height x width x channels, rows `stride`
  // bytes apart) to out_h x out_w into `out` (HWC, out_w * channels bytes per row), mirrored
  // left-right when `flip`. The box must lie within the image and have positive size.
  void Resize(const uint8_t* src, int64_t height, int64_t width, int64_t channels, int64_t stride,
              const ResizeBox& box, int64_t out_h, int64_t out_w, bool flip, uint8_t* out);

 private:
  struct Axis {
    int64_t taps = 0;              // coefficients per output pixel
    std::vector<int32_t> bounds;   // per output pixel: first source pixel, count
    std::vector<int32_t> weights;  // per output pixel: `taps` fixed-point coefficients
  };
  // Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis.
  void Coefficients(int64_t in_size, double in0, double in1, int64_t out_size, Axis& axis);

  Axis horizontal_, vertical_;
  std::vector<double> scratch_;               // real-valued coefficients before fixed point
  std::vector<uint8_t> rows_;                 // the first pass's output
  std::vector<int32_t> sums_;                 // one row (or transposed column) of sums
  std::vector<uint8_t> columns_, resampled_;  // the horizontal pass's transposed buffers
};

}  // namespace maestro::dataloader
