// JPEG decoding with libjpeg-turbo for the data path: only the region a crop needs is
// decoded (columns through jpeg_crop_scanline, rows above skipped with jpeg_skip_scanlines,
// decoding stopped after the last needed row), optionally at 1/2, 1/4 or 1/8 scale in the DCT
// (cheaper than decoding at full size and shrinking). Grayscale and CMYK/YCCK files come out as
// RGB, as Pillow's convert("RGB") gives them; progressive files decode like baseline ones.
// Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "maestro/dataloader/dataset.h"
#include "maestro/shared/status.h"

namespace maestro::dataloader {

struct JpegInfo {
  int64_t height = 0, width = 0;
  int64_t components = 0;  // in the file: 1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK
  bool progressive = false;
};

// True when `bytes` start with the JPEG SOI marker.
bool LooksLikeJpeg(std::string_view bytes);

// The header only. INVALID_ARGUMENT / DATA_LOSS for what libjpeg cannot read.
Result<JpegInfo> ReadJpegHeader(std::string_view bytes);

// The largest scale in {8, 4, 2} at which `box` keeps at least `min_size` pixels in both
// directions, else 1. (libjpeg-turbo's other M/8 factors are slower than a full decode.)
int ChooseDctScale(const CropBox& box, int64_t min_size);

// Decodes `box` (in full-size pixels) at 1/scale, scale in {1, 2, 4, 8}, into HWC RGB. The
// result covers rows [floor(top / scale), ceil(bottom / scale)) and the same for columns,
// clipped to the scaled image: the region of the scaled decode that contains the box.
// DATA_LOSS for a corrupt or truncated file; INVALID_ARGUMENT for a box outside the image.
Result<RawSample> DecodeJpegRegion(std::string_view bytes, const CropBox& box, int scale = 1);

// What DecodeJpegRegion decodes, before its last copy: `height` rows of RGB pixels `stride`
// bytes apart, the region's `width` pixels starting at pixel `x_offset` of each row.
struct JpegSpan {
  int64_t height = 0, width = 0, stride = 0, x_offset = 0;
  std::vector<uint8_t> pixels;  // reused between calls: resized, never shrunk
};

// DecodeJpegRegion into `span`, RGB rows decoded in place (no copy). For the loader's hot path.
Status DecodeJpegSpan(std::string_view bytes, const CropBox& box, int scale, JpegSpan& span);

// Encodes HWC pixels (RGB, or 1 channel) as a baseline JPEG at `quality` with 4:2:0 chroma
// subsampling (libjpeg's defaults otherwise). INVALID_ARGUMENT for another channel count.
Result<std::string> EncodeJpeg(const RawSample& image, int quality);

}  // namespace maestro::dataloader
