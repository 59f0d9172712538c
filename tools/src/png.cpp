#include "maestro/tools/png.h"

#include <zlib.h>

#include "maestro/shared/file_util.h"

namespace maestro::tools {
namespace {

void AppendU32(uint32_t v, std::string& out) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xFF);
}

void AppendChunk(const char* type, const std::string& data, std::string& out) {
  AppendU32(static_cast<uint32_t>(data.size()), out);
  std::string body = std::string(type, 4) + data;
  out += body;
  AppendU32(static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()),
                                        static_cast<uInt>(body.size()))),
            out);
}

}  // namespace

Result<std::string> EncodePng(const Image& image) {
  if (image.channels != 1 && image.channels != 3) {
    return InvalidArgumentError("PNG: channels must be 1 or 3, got " +
                                std::to_string(image.channels));
  }
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width * image.height * image.channels)) {
    return InvalidArgumentError("PNG: pixel count does not match " + std::to_string(image.width) +
                                "x" + std::to_string(image.height) + "x" +
                                std::to_string(image.channels));
  }
  // Each scanline is prefixed with filter type 0 (none).
  const size_t row_bytes = static_cast<size_t>(image.width * image.channels);
  std::string raw;
  raw.reserve((row_bytes + 1) * static_cast<size_t>(image.height));
  for (int64_t y = 0; y < image.height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(image.pixels.data()) + y * row_bytes, row_bytes);
  }
  uLongf compressed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string compressed(compressed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(compressed.data()), &compressed_size,
                reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()),
                Z_BEST_SPEED) != Z_OK) {
    return InternalError("PNG: zlib compression failed");
  }
  compressed.resize(compressed_size);

  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string header;
  AppendU32(static_cast<uint32_t>(image.width), header);
  AppendU32(static_cast<uint32_t>(image.height), header);
  header += static_cast<char>(8);                            // bit depth
  header += static_cast<char>(image.channels == 3 ? 2 : 0);  // color type: RGB or gray
  header += std::string(3, '\0');  // deflate, adaptive filter, no interlace
  AppendChunk("IHDR", header, out);
  AppendChunk("IDAT", compressed, out);
  AppendChunk("IEND", "", out);
  return out;
}

Status WritePng(const std::string& path, const Image& image) {
  MAESTRO_ASSIGN_OR_RETURN(std::string bytes, EncodePng(image));
  return WriteFileAtomic(path, bytes);
}

}  // namespace maestro::tools
