#include "maestro/dataloader/idx.h"

#include "maestro/shared/file_util.h"

#ifdef MAESTRO_HAVE_ZLIB
#include <zlib.h>
#endif

#include <cerrno>
#include <cstring>
#include <memory>

namespace maestro::dataloader {
namespace {

#ifndef MAESTRO_HAVE_ZLIB
Result<std::string> ReadMaybeGzip(const std::string& path) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    return FailedPreconditionError(path + ": this build has no zlib; decompress the file first");
  }
  return ReadFile(path);
}
#else
// Reads the whole (possibly gzip-compressed) file; zlib passes plain files through.
Result<std::string> ReadMaybeGzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    std::string message = "cannot open " + path + ": " + std::strerror(errno);
    if (errno == ENOENT) return NotFoundError(message);
    return UnavailableError(message);
  }
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);
  std::string out;
  char buffer[1 << 16];
  while (true) {
    int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      const char* what = gzerror(file, &code);
      return DataLossError("cannot decompress " + path + ": " + what);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}
#endif

}  // namespace

Result<IdxArray> ReadIdx(const std::string& path) {
  MAESTRO_ASSIGN_OR_RETURN(std::string bytes, ReadMaybeGzip(path));
  auto u8 = [&bytes](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  if (bytes.size() < 4) return DataLossError(path + ": too short for an IDX header");
  if (u8(0) != 0 || u8(1) != 0) return DataLossError(path + ": bad IDX magic");
  if (u8(2) != 0x08) {
    return InvalidArgumentError(path + ": IDX element type " + std::to_string(u8(2)) +
                                " is not unsigned byte (0x08)");
  }
  const size_t ndim = u8(3);
  if (ndim == 0) return DataLossError(path + ": IDX file with zero dimensions");
  if (bytes.size() < 4 + 4 * ndim) return DataLossError(path + ": truncated IDX header");
  IdxArray array;
  uint64_t count = 1;
  for (size_t d = 0; d < ndim; ++d) {
    size_t at = 4 + 4 * d;
    uint32_t dim = (uint32_t{u8(at)} << 24) | (uint32_t{u8(at + 1)} << 16) |
                   (uint32_t{u8(at + 2)} << 8) | uint32_t{u8(at + 3)};
    array.dims.push_back(dim);
    count *= dim;
  }
  const size_t header = 4 + 4 * ndim;
  if (bytes.size() - header != count) {
    return DataLossError(path + ": IDX header promises " + std::to_string(count) +
                         " bytes of data, the file has " + std::to_string(bytes.size() - header));
  }
  array.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return array;
}

}  // namespace maestro::dataloader
