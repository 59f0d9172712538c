#include "maestro/checkpoint/safetensors.h"

#include <algorithm>
#include <cstring>

#include "maestro/shared/file_util.h"
#include "maestro/shared/json.h"

namespace maestro::checkpoint {
namespace {

// Larger headers are refused, as the reference implementation does.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

const DTypeInfo& Info(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  throw Error(InternalError("unhandled dtype"));
}

uint64_t ReadLittleEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void AppendLittleEndian64(uint64_t v, std::string& out) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

// Product of dims, or -1 on a negative dim or int64 overflow.
int64_t CheckedNumel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > INT64_MAX / d) return -1;
    n *= d;
  }
  return n;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

Result<Entry> ParseEntry(const std::string& name, const Json& value) {
  auto bad = [&](const std::string& what) {
    return DataLossError("tensor '" + name + "': " + what);
  };
  if (!value.is_object()) return bad("header entry is not an object");
  const Json* dtype_json = value.Find("dtype");
  const Json* shape_json = value.Find("shape");
  const Json* offsets_json = value.Find("data_offsets");
  if (!dtype_json || !dtype_json->is_string()) return bad("missing or non-string 'dtype'");
  if (!shape_json || !shape_json->is_array()) return bad("missing or non-array 'shape'");
  if (!offsets_json || !offsets_json->is_array() || offsets_json->as_array().size() != 2) {
    return bad("'data_offsets' is not a pair");
  }
  Result<DType> dtype = ParseDType(dtype_json->as_string());
  if (!dtype.ok()) return dtype.status().WithContext("tensor '" + name + "'");
  Entry entry{name, *dtype, {}, 0, 0};
  for (const Json& d : shape_json->as_array()) {
    if (!d.is_int() || d.as_int() < 0) return bad("shape has a non-integer or negative dim");
    entry.shape.push_back(d.as_int());
  }
  const Json& begin = offsets_json->as_array()[0];
  const Json& end = offsets_json->as_array()[1];
  if (!begin.is_int() || !end.is_int() || begin.as_int() < 0 || end.as_int() < begin.as_int()) {
    return bad("'data_offsets' are not a non-negative increasing pair");
  }
  entry.begin = static_cast<uint64_t>(begin.as_int());
  entry.end = static_cast<uint64_t>(end.as_int());
  int64_t numel = CheckedNumel(entry.shape);
  if (numel < 0) return bad("shape " + ShapeText(entry.shape) + " overflows");
  uint64_t want = static_cast<uint64_t>(numel) * DTypeSize(entry.dtype);
  if (entry.end - entry.begin != want) {
    return bad("shape " + ShapeText(entry.shape) + " of " + DTypeName(entry.dtype) + " needs " +
               std::to_string(want) + " bytes but its byte range holds " +
               std::to_string(entry.end - entry.begin));
  }
  return entry;
}

}  // namespace

const char* DTypeName(DType dtype) { return Info(dtype).name; }
size_t DTypeSize(DType dtype) { return Info(dtype).size; }

Result<DType> ParseDType(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (name == info.name) return info.dtype;
  }
  return InvalidArgumentError("unknown or unsupported dtype '" + std::string(name) + "'");
}

int64_t Tensor::numel() const { return CheckedNumel(shape); }

Result<SafetensorsContent> ParseSafetensors(std::string_view file_bytes) {
  if (file_bytes.size() < 8) {
    return DataLossError("file is " + std::to_string(file_bytes.size()) +
                         " bytes, shorter than the 8-byte header length");
  }
  uint64_t header_bytes = ReadLittleEndian64(file_bytes.data());
  if (header_bytes > kMaxHeaderBytes) {
    return DataLossError("header length " + std::to_string(header_bytes) +
                         " is implausible (limit " + std::to_string(kMaxHeaderBytes) + ")");
  }
  if (header_bytes > file_bytes.size() - 8) {
    return DataLossError("truncated: header claims " + std::to_string(header_bytes) +
                         " bytes but the file has " + std::to_string(file_bytes.size() - 8) +
                         " after the length");
  }
  Result<Json> header = Json::Parse(file_bytes.substr(8, header_bytes));
  if (!header.ok()) return DataLossError("bad header: " + header.status().message());
  if (!header->is_object()) return DataLossError("bad header: not a JSON object");
  std::string_view data = file_bytes.substr(8 + header_bytes);

  SafetensorsContent content;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header->as_object()) {
    if (name == "__metadata__") {
      if (!value.is_object()) return DataLossError("bad header: __metadata__ is not an object");
      for (const auto& [key, text] : value.as_object()) {
        if (!text.is_string()) {
          return DataLossError("bad header: __metadata__['" + key + "'] is not a string");
        }
        content.metadata[key] = text.as_string();
      }
      continue;
    }
    MAESTRO_ASSIGN_OR_RETURN(Entry entry, ParseEntry(name, value));
    if (entry.end > data.size()) {
      return DataLossError("truncated: tensor '" + name + "' ends at byte " +
                           std::to_string(entry.end) + " of a data section of " +
                           std::to_string(data.size()));
    }
    entries.push_back(std::move(entry));
  }
  // The byte ranges must tile the data section: no overlap, no holes.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  uint64_t covered = 0;
  for (const Entry& entry : entries) {
    if (entry.begin != covered) {
      return DataLossError("tensor '" + entry.name + "' starts at byte " +
                           std::to_string(entry.begin) + ", expected " + std::to_string(covered) +
                           " (overlapping or gapped byte ranges)");
    }
    covered = entry.end;
  }
  if (covered != data.size()) {
    return DataLossError("data section has " + std::to_string(data.size() - covered) +
                         " bytes that no tensor describes");
  }
  for (Entry& entry : entries) {
    Tensor tensor;
    tensor.dtype = entry.dtype;
    tensor.shape = std::move(entry.shape);
    tensor.bytes.assign(data.substr(entry.begin, entry.end - entry.begin));
    content.tensors.emplace(entry.name, std::move(tensor));
  }
  return content;
}

Result<std::string> SerializeSafetensors(const SafetensorsContent& content) {
  Json::Object header;
  if (!content.metadata.empty()) {
    Json::Object metadata;
    for (const auto& [key, value] : content.metadata) metadata.emplace(key, Json(value));
    header.emplace("__metadata__", Json(std::move(metadata)));
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : content.tensors) {
    if (name == "__metadata__") return InvalidArgumentError("'__metadata__' is not a tensor name");
    int64_t numel = tensor.numel();
    if (numel < 0 ||
        tensor.bytes.size() != static_cast<uint64_t>(numel) * DTypeSize(tensor.dtype)) {
      return InvalidArgumentError("tensor '" + name + "': " + std::to_string(tensor.bytes.size()) +
                                  " bytes do not fit shape " + ShapeText(tensor.shape) + " of " +
                                  DTypeName(tensor.dtype));
    }
    Json::Array shape;
    for (int64_t d : tensor.shape) shape.emplace_back(d);
    Json::Object entry;
    entry.emplace("dtype", Json(DTypeName(tensor.dtype)));
    entry.emplace("shape", Json(std::move(shape)));
    entry.emplace("data_offsets",
                  Json(Json::Array{Json(offset), Json(offset + tensor.bytes.size())}));
    header.emplace(name, Json(std::move(entry)));
    offset += tensor.bytes.size();
  }
  std::string header_text = Json(std::move(header)).Dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header_text.size() + offset);
  AppendLittleEndian64(header_text.size(), out);
  out += header_text;
  for (const auto& [name, tensor] : content.tensors) out += tensor.bytes;
  return out;
}

Result<SafetensorsContent> ReadSafetensors(const std::string& path) {
  MAESTRO_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  Result<SafetensorsContent> content = ParseSafetensors(bytes);
  if (!content.ok()) return content.status().WithContext(path);
  return content;
}

Status WriteSafetensors(const std::string& path, const SafetensorsContent& content) {
  Result<std::string> bytes = SerializeSafetensors(content);
  if (!bytes.ok()) return bytes.status().WithContext(path);
  return WriteFileAtomic(path, *bytes);
}

}  // namespace maestro::checkpoint
