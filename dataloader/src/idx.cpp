#include "maestro/dataloader/idx.h"

#include "maestro/shared/file_util.h"

#ifdef MAESTRO_HAVE_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

namespace maestro::dataloader {
namespace {

// A file read in chunks (through zlib when it is gzip-compressed; zlib passes plain files
// through), so that an IDX file is never read past what its header promises: a small gzip file
// that inflates to gigabytes is refused after the promised bytes, not held in memory.
class ChunkReader {
 public:
  static Result<ChunkReader> Open(const std::string& path) {
    // A FIFO (or device) would block or never end: regular files only.
    if (PathExists(path)) MAESTRO_RETURN_IF_ERROR(CheckRegularFile(path));
    ChunkReader reader;
    reader.path_ = path;
#ifdef MAESTRO_HAVE_ZLIB
    reader.file_ = gzopen(path.c_str(), "rb");
    if (reader.file_ == nullptr) {
#else
    if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
      return FailedPreconditionError(path + ": this build has no zlib; decompress the file first");
    }
    reader.file_ = std::fopen(path.c_str(), "rb");
    if (reader.file_ == nullptr) {
#endif
      std::string message = "cannot open " + path + ": " + std::strerror(errno);
      if (errno == ENOENT) return NotFoundError(message);
      return UnavailableError(message);
    }
    return reader;
  }
  ChunkReader() = default;
  ChunkReader(ChunkReader&& other) noexcept
      : path_(std::move(other.path_)), file_(std::exchange(other.file_, nullptr)) {}
  ChunkReader& operator=(ChunkReader&&) = delete;
  ~ChunkReader() {
#ifdef MAESTRO_HAVE_ZLIB
    if (file_ != nullptr) gzclose(file_);
#else
    if (file_ != nullptr) std::fclose(file_);
#endif
  }

  // Appends up to `n` bytes to `out`; fewer only at the end of the file.
  Status Read(size_t n, std::string& out) {
    char buffer[1 << 16];
    while (n > 0) {
      const size_t want = std::min(n, sizeof(buffer));
#ifdef MAESTRO_HAVE_ZLIB
      const int got = gzread(file_, buffer, static_cast<unsigned>(want));
      if (got < 0) {
        int code = 0;
        return DataLossError("cannot decompress " + path_ + ": " + gzerror(file_, &code));
      }
#else
      const size_t got = std::fread(buffer, 1, want, file_);
      if (got < want && std::ferror(file_)) {
        return DataLossError("cannot read " + path_ + ": " + std::strerror(errno));
      }
#endif
      if (got == 0) break;
      out.append(buffer, static_cast<size_t>(got));
      n -= static_cast<size_t>(got);
    }
    return OkStatus();
  }

 private:
  std::string path_;
#ifdef MAESTRO_HAVE_ZLIB
  gzFile file_ = nullptr;
#else
  std::FILE* file_ = nullptr;
#endif
};

}  // namespace

Result<IdxArray> ReadIdx(const std::string& path) {
  MAESTRO_ASSIGN_OR_RETURN(ChunkReader reader, ChunkReader::Open(path));
  std::string header;
  MAESTRO_RETURN_IF_ERROR(reader.Read(4, header));
  auto u8 = [&header](size_t i) { return static_cast<uint8_t>(header[i]); };
  if (header.size() < 4) return DataLossError(path + ": too short for an IDX header");
  if (u8(0) != 0 || u8(1) != 0) return DataLossError(path + ": bad IDX magic");
  if (u8(2) != 0x08) {
    return InvalidArgumentError(path + ": IDX element type " + std::to_string(u8(2)) +
                                " is not unsigned byte (0x08)");
  }
  const size_t ndim = u8(3);
  if (ndim == 0) return DataLossError(path + ": IDX file with zero dimensions");
  MAESTRO_RETURN_IF_ERROR(reader.Read(4 * ndim, header));
  if (header.size() < 4 + 4 * ndim) return DataLossError(path + ": truncated IDX header");
  IdxArray array;
  uint64_t count = 1;
  for (size_t d = 0; d < ndim; ++d) {
    size_t at = 4 + 4 * d;
    uint32_t dim = (uint32_t{u8(at)} << 24) | (uint32_t{u8(at + 1)} << 16) |
                   (uint32_t{u8(at + 2)} << 8) | uint32_t{u8(at + 3)};
    array.dims.push_back(dim);
    // Checked at every step: the product of up to 255 dimensions must not wrap around.
    if (dim != 0 && count > kMaxIdxBytes / dim) {
      return InvalidArgumentError(path + ": the IDX header promises more than " +
                                  std::to_string(kMaxIdxBytes) + " bytes of data (the limit)");
    }
    count *= dim;
  }
  // One byte more than promised tells a longer file from an exact one.
  std::string data;
  MAESTRO_RETURN_IF_ERROR(reader.Read(static_cast<size_t>(count) + 1, data));
  if (data.size() != count) {
    return DataLossError(path + ": IDX header promises " + std::to_string(count) +
                         " bytes of data, the file has " +
                         (data.size() > count ? "more" : std::to_string(data.size())));
  }
  array.data.assign(data.begin(), data.end());
  return array;
}

}  // namespace maestro::dataloader
