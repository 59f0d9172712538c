// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
// byte range, then the raw little-endian tensor bytes.
//
// This library has no LibTorch dependency: tensors are plain byte buffers with a dtype and a
// shape (checkpoint/torch_bridge.h converts to and from torch::Tensor). Every malformed input
// (truncated file, bad header, unknown dtype, a byte range that does not match the shape) is
// reported as a Status naming the file and the tensor; nothing here aborts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::checkpoint {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32", "BF16", ... as the format spells them.
const char* DTypeName(DType dtype);
// INVALID_ARGUMENT for a name this reader does not know (FP8 types among them).
Result<DType> ParseDType(std::string_view name);
// Bytes per element.
size_t DTypeSize(DType dtype);

// One tensor: its dtype, shape and row-major little-endian bytes (owned).
struct Tensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string bytes;

  int64_t numel() const;
};

using TensorMap = std::map<std::string, Tensor>;

// A whole file: named tensors plus the optional string-to-string "__metadata__".
struct SafetensorsContent {
  TensorMap tensors;
  std::map<std::string, std::string> metadata;
};

// Parses a whole file's bytes. DATA_LOSS for truncated or inconsistent bytes,
// INVALID_ARGUMENT for well-formed but unsupported content (an unknown dtype).
Result<SafetensorsContent> ParseSafetensors(std::string_view file_bytes);

// Serializes tensors in name order, the header padded with spaces to 8 bytes.
// INVALID_ARGUMENT when a tensor's byte count does not match its shape and dtype.
Result<std::string> SerializeSafetensors(const SafetensorsContent& content);

// File forms of the two above; messages name the path. The write is atomic
// (shared/file_util.h: temp file, fsync, rename).
Result<SafetensorsContent> ReadSafetensors(const std::string& path);
Status WriteSafetensors(const std::string& path, const SafetensorsContent& content);

}  // namespace maestro::checkpoint
