// SHA-256 (FIPS 180-4), for checkpoint and dataset manifests. Standard library only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "maestro/shared/status.h"

namespace maestro {

// Incremental hasher. Not thread-safe; one per stream of bytes.
class Sha256 {
 public:
  Sha256();
  void Update(std::string_view bytes);
  // The digest as 64 lowercase hex characters. The hasher must not be used afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string Sha256Hex(std::string_view bytes);
// Hashes a file in chunks. NOT_FOUND / UNAVAILABLE as ReadFile.
Result<std::string> Sha256File(const std::string& path);

}  // namespace maestro
