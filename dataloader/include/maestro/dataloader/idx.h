// Reader for the IDX files of MNIST and Fashion-MNIST (optionally gzip-compressed, as Debian's
// dataset-fashion-mnist installs them under /usr/share/datasets/fashion-mnist).
//
// Format: a big-endian magic (0x00 0x00 <type> <ndim>), ndim big-endian uint32 dims, then the
// row-major data. Only unsigned-byte data (type 0x08) is accepted, which is what both data
// sets use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::dataloader {

struct IdxArray {
  std::vector<uint32_t> dims;  // e.g. {60000, 28, 28} for images, {60000} for labels
  std::vector<uint8_t> data;   // row-major, product(dims) bytes
};

// The most data one IDX file may hold (MNIST's largest file has 47 MB): a header promising
// more is refused before anything is read.
inline constexpr uint64_t kMaxIdxBytes = uint64_t{256} << 20;

// Reads a whole .idx or .idx.gz file, never more than its header promises (plus one byte): a
// file longer than promised is DATA_LOSS without inflating the rest. NOT_FOUND for a missing
// file, DATA_LOSS for a truncated or malformed one, INVALID_ARGUMENT for a non-uint8 element
// type or a header promising more than kMaxIdxBytes.
Result<IdxArray> ReadIdx(const std::string& path);

// The Fashion-MNIST folder Debian installs.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

}  // namespace maestro::dataloader
