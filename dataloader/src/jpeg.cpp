#include "maestro/dataloader/jpeg.h"

// clang-format off
#include <cstdio>   // jpeglib.h needs FILE and size_t first
#include <csetjmp>
#include <jpeglib.h>
// clang-format on

#include <algorithm>
#include <string>
#include <vector>

namespace maestro::dataloader {
namespace {

// libjpeg reports errors through error_exit, which must not return: it long-jumps back to the
// decoding function with the message.
struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void OnError(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (level -1: corrupt or truncated data) are counted by libjpeg and remembered here;
// a decode whose rows hit one fails, as Pillow refuses truncated files.
void OnWarning(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  ++cinfo->err->num_warnings;
  (*cinfo->err->format_message)(cinfo, err->message);
}

// Everything the decode touches lives here, constructed before setjmp, so a long jump skips no
// destructor and clobbers no local.
struct Decode {
  Decode() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = OnError;
    err.pub.emit_message = OnWarning;
  }
  ~Decode() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
  Decode(const Decode&) = delete;
  Decode& operator=(const Decode&) = delete;

  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  std::vector<uint8_t> row;
  RawSample out;
  bool created = false;
};

// Creates the decompressor over `bytes` and reads the header. Call only under the caller's
// setjmp: libjpeg errors long-jump there.
void OpenAndReadHeader(Decode& d, std::string_view bytes) {
  jpeg_create_decompress(&d.cinfo);
  d.created = true;
  jpeg_mem_src(&d.cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&d.cinfo, TRUE);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// CMYK as libjpeg hands out Adobe files (inverted) to RGB as Pillow converts it: the JPEG
// plugin un-inverts ("CMYK;I"), then each channel is 255 - min(255, color + black)... in
// Pillow 13 a multiplicative form: (255 - c) * (255 - k) / 255, rounded.
void CmykToRgb(const uint8_t* cmyk, uint8_t* rgb, bool inverted) {
  const int k = inverted ? cmyk[3] : 255 - cmyk[3];
  for (int i = 0; i < 3; ++i) {
    const int c = inverted ? cmyk[i] : 255 - cmyk[i];  // 255 - color
    const int t = c * k + 128;
    rgb[i] = static_cast<uint8_t>((t + (t >> 8)) >> 8);
  }
}

bool Run(Decode& d, std::string_view bytes, const CropBox& box, int scale, std::string& error) {
  if (setjmp(d.err.jump)) {
    error = d.err.message;
    return false;
  }
  OpenAndReadHeader(d, bytes);
  const bool cmyk = d.cinfo.jpeg_color_space == JCS_CMYK || d.cinfo.jpeg_color_space == JCS_YCCK;
  const bool gray = d.cinfo.jpeg_color_space == JCS_GRAYSCALE;
  d.cinfo.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
  d.cinfo.scale_num = 1;
  d.cinfo.scale_denom = static_cast<unsigned int>(scale);
  d.cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&d.cinfo);
  const int64_t height = d.cinfo.output_height, width = d.cinfo.output_width;
  const int64_t top = box.top / scale, left = box.left / scale;
  const int64_t bottom = std::min(height, CeilDiv(box.top + box.height, scale));
  const int64_t right = std::min(width, CeilDiv(box.left + box.width, scale));
  if (top >= bottom || left >= right) {
    error = "the crop box is outside the image";
    return false;
  }
  // The columns at a crop's edges are upsampled without their neighbours (chroma subsampled
  // horizontally), so the decoded span must reach past the needed one on both sides: from
  // left - 1 (libjpeg moves that down to an iMCU boundary; `skip` drops the extra columns) to
  // one iMCU column beyond `right`.
  const int64_t imcu_cols = static_cast<int64_t>(d.cinfo.max_h_samp_factor) *
                            static_cast<int64_t>(d.cinfo.min_DCT_scaled_size);
  const int64_t decode_left = std::max<int64_t>(0, left - 1);
  const int64_t decode_right = std::min(width, right + imcu_cols);
  JDIMENSION x_offset = static_cast<JDIMENSION>(decode_left);
  JDIMENSION crop_width = static_cast<JDIMENSION>(decode_right - decode_left);
  if (decode_left > 0 || decode_right < width) {
    jpeg_crop_scanline(&d.cinfo, &x_offset, &crop_width);
  }
  const int64_t skip = left - static_cast<int64_t>(x_offset);  // crop starts at an iMCU edge
  const int64_t components = d.cinfo.output_components;
  d.row.resize(static_cast<size_t>(d.cinfo.output_width * components));
  // Skipping straight to `top` can change its first rows when chroma is subsampled vertically
  // (the fancy upsampler lacks the context rows above): skip whole iMCU rows up to one before
  // the one holding `top`, then decode and drop the rows up to it.
  const int64_t imcu_rows = static_cast<int64_t>(d.cinfo.max_v_samp_factor) *
                            static_cast<int64_t>(d.cinfo.min_DCT_scaled_size);
  const int64_t skip_to = std::max<int64_t>(0, (top / imcu_rows - 1) * imcu_rows);
  if (skip_to > 0) jpeg_skip_scanlines(&d.cinfo, static_cast<JDIMENSION>(skip_to));
  for (int64_t y = skip_to; y < top; ++y) {
    JSAMPROW rows[1] = {d.row.data()};
    jpeg_read_scanlines(&d.cinfo, rows, 1);
  }
  RawSample& out = d.out;
  out.height = bottom - top;
  out.width = right - left;
  out.channels = 3;
  out.pixels.resize(static_cast<size_t>(out.height * out.width * 3));
  const bool adobe_inverted = d.cinfo.saw_Adobe_marker;
  for (int64_t y = 0; y < out.height; ++y) {
    JSAMPROW rows[1] = {d.row.data()};
    jpeg_read_scanlines(&d.cinfo, rows, 1);
    uint8_t* dst = &out.pixels[static_cast<size_t>(y * out.width * 3)];
    const uint8_t* src = d.row.data() + skip * components;
    for (int64_t x = 0; x < out.width; ++x, dst += 3, src += components) {
      if (components == 3) {
        dst[0] = src[0], dst[1] = src[1], dst[2] = src[2];
      } else if (components == 1) {
        dst[0] = dst[1] = dst[2] = src[0];
      } else {
        CmykToRgb(src, dst, adobe_inverted);
      }
    }
  }
  if (d.err.pub.num_warnings > 0) {
    error = std::string("corrupt data: ") + d.err.message;
    return false;
  }
  jpeg_abort_decompress(&d.cinfo);  // stop after the last needed row
  return true;
}

bool ReadHeader(Decode& d, std::string_view bytes, JpegInfo& info) {
  if (setjmp(d.err.jump)) return false;
  OpenAndReadHeader(d, bytes);
  info.height = d.cinfo.image_height;
  info.width = d.cinfo.image_width;
  info.components = d.cinfo.num_components;
  info.progressive = jpeg_has_multiple_scans(&d.cinfo) != 0;
  return true;
}

}  // namespace

bool LooksLikeJpeg(std::string_view bytes) {
  return bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
         static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF;
}

Result<JpegInfo> ReadJpegHeader(std::string_view bytes) {
  if (!LooksLikeJpeg(bytes)) return InvalidArgumentError("not a JPEG file (no SOI marker)");
  Decode d;
  JpegInfo info;
  if (!ReadHeader(d, bytes, info))
    return DataLossError(std::string("JPEG header: ") + d.err.message);
  return info;
}

int ChooseDctScale(const CropBox& box, int64_t min_size) {
  for (int scale : {8, 4, 2}) {
    if (box.height / scale >= min_size && box.width / scale >= min_size) return scale;
  }
  return 1;
}

Result<RawSample> DecodeJpegRegion(std::string_view bytes, const CropBox& box, int scale) {
  if (scale != 1 && scale != 2 && scale != 4 && scale != 8)
    return InvalidArgumentError("DCT scale must be 1, 2, 4 or 8");
  if (box.top < 0 || box.left < 0 || box.height <= 0 || box.width <= 0)
    return InvalidArgumentError("the crop box must be non-negative and non-empty");
  if (!LooksLikeJpeg(bytes)) return InvalidArgumentError("not a JPEG file (no SOI marker)");
  Decode d;
  std::string error;
  if (!Run(d, bytes, box, scale, error)) {
    if (error == "the crop box is outside the image") return InvalidArgumentError(error);
    return DataLossError("JPEG decode: " + error);
  }
  return std::move(d.out);
}

}  // namespace maestro::dataloader
