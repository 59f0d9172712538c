// Writes 8-bit grayscale or RGB PNG files (zlib deflate, no filtering). For pictures the tools
// produce: reconstructions, masks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::tools {

struct Image {
  int64_t width = 0;
  int64_t height = 0;
  int64_t channels = 1;         // 1 (gray) or 3 (RGB)
  std::vector<uint8_t> pixels;  // row-major, channels interleaved
};

// The PNG bytes of `image`. INVALID_ARGUMENT for an inconsistent size or channel count.
Result<std::string> EncodePng(const Image& image);
// Encodes and writes atomically.
Status WritePng(const std::string& path, const Image& image);

}  // namespace maestro::tools
