#include "maestro/dataloader/jpeg.h"

// clang-format off
#include <cstdio>   // jpeglib.h needs FILE and size_t first
#include <csetjmp>
#include <jpeglib.h>
// clang-format on

#include <algorithm>
#include <cstdlib>
#include <cstring>
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

bool Run(Decode& d, std::string_view bytes, const CropBox& box, int scale, JpegSpan& span,
         std::string& error) {
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
  // With chroma subsampled horizontally, the columns at a crop's edges are upsampled without
  // their neighbours, so the decoded span must reach past the needed one on both sides: from
  // left - 1 (libjpeg moves that down to an iMCU boundary; `skip` drops the extra columns) to
  // one iMCU column beyond `right`. Without subsampling (4:4:4, grayscale) each pixel depends
  // on its own samples only.
  const bool h_subsampled = d.cinfo.max_h_samp_factor > 1;
  const int64_t imcu_cols = static_cast<int64_t>(d.cinfo.max_h_samp_factor) *
                            static_cast<int64_t>(d.cinfo.min_DCT_scaled_size);
  const int64_t decode_left = h_subsampled ? std::max<int64_t>(0, left - 1) : left;
  const int64_t decode_right = h_subsampled ? std::min(width, right + imcu_cols) : right;
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
  // the one holding `top`, then decode and drop the rows up to it. Without vertical
  // subsampling, straight to `top`.
  const int64_t imcu_rows = static_cast<int64_t>(d.cinfo.max_v_samp_factor) *
                            static_cast<int64_t>(d.cinfo.min_DCT_scaled_size);
  const int64_t skip_to =
      d.cinfo.max_v_samp_factor > 1 ? std::max<int64_t>(0, (top / imcu_rows - 1) * imcu_rows) : top;
  if (skip_to > 0) jpeg_skip_scanlines(&d.cinfo, static_cast<JDIMENSION>(skip_to));
  for (int64_t y = skip_to; y < top; ++y) {
    JSAMPROW rows[1] = {d.row.data()};
    jpeg_read_scanlines(&d.cinfo, rows, 1);
  }
  span.height = bottom - top;
  span.width = right - left;
  // RGB rows are decoded in place (the span keeps libjpeg's whole decoded width); gray and
  // CMYK rows are converted into a span of the region's width.
  const bool in_place = components == 3;
  span.x_offset = in_place ? skip : 0;
  span.stride = (in_place ? static_cast<int64_t>(d.cinfo.output_width) : span.width) * 3;
  span.pixels.resize(static_cast<size_t>(span.height * span.stride));
  const bool adobe_inverted = d.cinfo.saw_Adobe_marker;
  for (int64_t y = 0; y < span.height; ++y) {
    uint8_t* dst = &span.pixels[static_cast<size_t>(y * span.stride)];
    JSAMPROW rows[1] = {in_place ? dst : d.row.data()};
    jpeg_read_scanlines(&d.cinfo, rows, 1);
    if (in_place) continue;
    const uint8_t* src = d.row.data() + skip * components;
    if (components == 1) {
      for (int64_t x = 0; x < span.width; ++x, dst += 3) dst[0] = dst[1] = dst[2] = src[x];
    } else {
      for (int64_t x = 0; x < span.width; ++x, dst += 3, src += components)
        CmykToRgb(src, dst, adobe_inverted);
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

Status DecodeJpegSpan(std::string_view bytes, const CropBox& box, int scale, JpegSpan& span) {
  if (scale != 1 && scale != 2 && scale != 4 && scale != 8)
    return InvalidArgumentError("DCT scale must be 1, 2, 4 or 8");
  if (box.top < 0 || box.left < 0 || box.height <= 0 || box.width <= 0)
    return InvalidArgumentError("the crop box must be non-negative and non-empty");
  if (!LooksLikeJpeg(bytes)) return InvalidArgumentError("not a JPEG file (no SOI marker)");
  Decode d;
  std::string error;
  if (!Run(d, bytes, box, scale, span, error)) {
    if (error == "the crop box is outside the image") return InvalidArgumentError(error);
    return DataLossError("JPEG decode: " + error);
  }
  return OkStatus();
}

Result<RawSample> DecodeJpegRegion(std::string_view bytes, const CropBox& box, int scale) {
  JpegSpan span;
  MAESTRO_RETURN_IF_ERROR(DecodeJpegSpan(bytes, box, scale, span));
  RawSample out;
  out.height = span.height;
  out.width = span.width;
  out.channels = 3;
  if (span.x_offset == 0 && span.stride == span.width * 3) {
    out.pixels = std::move(span.pixels);
    return out;
  }
  out.pixels.resize(static_cast<size_t>(out.height * out.width * 3));
  for (int64_t y = 0; y < out.height; ++y) {
    std::memcpy(&out.pixels[static_cast<size_t>(y * out.width * 3)],
                &span.pixels[static_cast<size_t>(y * span.stride + span.x_offset * 3)],
                static_cast<size_t>(out.width * 3));
  }
  return out;
}

namespace {

// The compressor's counterpart of Decode: state constructed before setjmp.
struct Encode {
  Encode() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = OnError;
  }
  ~Encode() {
    if (created) jpeg_destroy_compress(&cinfo);
    std::free(buffer);  // allocated by jpeg_mem_dest
  }
  Encode(const Encode&) = delete;
  Encode& operator=(const Encode&) = delete;

  jpeg_compress_struct cinfo{};
  ErrorManager err{};
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  bool created = false;
};

}  // namespace

Result<std::string> EncodeJpeg(const RawSample& image, int quality) {
  if (image.channels != 3 && image.channels != 1) {
    return InvalidArgumentError("JPEG encoding takes 1 or 3 channels, not " +
                                std::to_string(image.channels));
  }
  Encode e;
  if (setjmp(e.err.jump)) return InternalError(std::string("JPEG encoding: ") + e.err.message);
  jpeg_create_compress(&e.cinfo);
  e.created = true;
  jpeg_mem_dest(&e.cinfo, &e.buffer, &e.size);
  e.cinfo.image_width = static_cast<JDIMENSION>(image.width);
  e.cinfo.image_height = static_cast<JDIMENSION>(image.height);
  e.cinfo.input_components = static_cast<int>(image.channels);
  e.cinfo.in_color_space = image.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&e.cinfo);  // YCbCr with 2x2 luma sampling (4:2:0), baseline
  jpeg_set_quality(&e.cinfo, quality, TRUE);
  jpeg_start_compress(&e.cinfo, TRUE);
  const auto stride = static_cast<size_t>(image.width * image.channels);
  while (e.cinfo.next_scanline < e.cinfo.image_height) {
    auto* row = const_cast<JSAMPLE*>(image.pixels.data() + e.cinfo.next_scanline * stride);
    jpeg_write_scanlines(&e.cinfo, &row, 1);
  }
  jpeg_finish_compress(&e.cinfo);
  return std::string(reinterpret_cast<const char*>(e.buffer), e.size);
}

}  // namespace maestro::dataloader
