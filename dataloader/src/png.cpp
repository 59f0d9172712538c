#include "maestro/dataloader/png.h"

#include <png.h>

#include <cstring>

namespace maestro::dataloader {

bool LooksLikePng(std::string_view bytes) {
  static constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return bytes.size() >= 8 && std::memcmp(bytes.data(), kSignature, 8) == 0;
}

Result<RawSample> DecodePng(std::string_view bytes) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    std::string message = image.message;
    png_image_free(&image);
    return DataLossError("PNG: " + message);
  }
  // RGBA then dropping alpha keeps the color values as stored (PNG_FORMAT_RGB would composite
  // them over a background).
  image.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr)) {
    std::string message = image.message;
    png_image_free(&image);
    return DataLossError("PNG: " + message);
  }
  RawSample out;
  out.height = image.height;
  out.width = image.width;
  out.channels = 3;
  out.pixels.resize(static_cast<size_t>(out.height * out.width * 3));
  for (size_t i = 0, n = static_cast<size_t>(out.height * out.width); i < n; ++i) {
    std::memcpy(&out.pixels[i * 3], &rgba[i * 4], 3);
  }
  return out;
}

}  // namespace maestro::dataloader
