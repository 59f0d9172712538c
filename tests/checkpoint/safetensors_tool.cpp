// Test helper for tests/python/safetensors_interop.py.
//   safetensors_tool write FILE   writes the expected tensors and metadata
//   safetensors_tool check FILE   reads FILE and compares with the expected tensors
// Exit 0 on success, 1 with the Status on stderr for a read error or a mismatch, 2 on usage.
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "maestro/checkpoint/safetensors.h"

namespace {

using maestro::checkpoint::DType;
using maestro::checkpoint::SafetensorsContent;
using maestro::checkpoint::Tensor;

template <typename T>
Tensor Make(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return t;
}

// IEEE half / bfloat16 bit patterns of values exactly representable in both (checked by Python).
uint16_t ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>(bits >> 16);
}
uint16_t ToF16(float f) {  // for the small non-negative multiples of 1/8 used below
  if (f == 0.0f) return 0;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  int32_t exponent = static_cast<int32_t>((bits >> 23) & 0xFF) - 127 + 15;
  uint32_t mantissa = (bits >> 13) & 0x3FF;
  return static_cast<uint16_t>((exponent << 10) | mantissa);
}

SafetensorsContent Expected() {
  SafetensorsContent c;
  std::vector<float> f32(24), bf16_src(8), f16_src(6);
  for (int i = 0; i < 24; ++i) f32[i] = static_cast<float>(i) * 0.5f - 3.0f;
  std::vector<uint16_t> bf16, f16;
  for (int i = 0; i < 8; ++i) bf16.push_back(ToBf16(static_cast<float>(i) * 0.25f - 1.0f));
  for (int i = 0; i < 6; ++i) f16.push_back(ToF16(static_cast<float>(i) / 8.0f));
  c.tensors["f32"] = Make(DType::kF32, {2, 3, 4}, f32);
  c.tensors["bf16"] = Make(DType::kBF16, {8}, bf16);
  c.tensors["f16"] = Make(DType::kF16, {3, 2}, f16);
  c.tensors["i64"] =
      Make(DType::kI64, {4}, std::vector<int64_t>{-(int64_t{1} << 40), 0, 7, int64_t{1} << 50});
  c.tensors["empty"] = Make(DType::kF32, {0, 5}, std::vector<float>{});
  c.metadata = {{"format", "pt"}, {"producer", "maestro-interop"}};
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "check")) {
    std::cerr << "usage: safetensors_tool write|check FILE\n";
    return 2;
  }
  const std::string mode = argv[1], path = argv[2];
  const SafetensorsContent want = Expected();
  if (mode == "write") {
    maestro::Status status = maestro::checkpoint::WriteSafetensors(path, want);
    if (!status.ok()) {
      std::cerr << status.ToString() << "\n";
      return 1;
    }
    std::cout << "wrote " << want.tensors.size() << " tensors to " << path << "\n";
    return 0;
  }
  auto got = maestro::checkpoint::ReadSafetensors(path);
  if (!got.ok()) {
    std::cerr << got.status().ToString() << "\n";
    return 1;
  }
  int mismatches = 0;
  for (const auto& [name, tensor] : want.tensors) {
    auto it = got->tensors.find(name);
    if (it == got->tensors.end() || it->second.dtype != tensor.dtype ||
        it->second.shape != tensor.shape || it->second.bytes != tensor.bytes) {
      std::cerr << "tensor " << name << " differs\n";
      ++mismatches;
    }
  }
  if (got->tensors.size() != want.tensors.size()) {
    std::cerr << "tensor count " << got->tensors.size() << " != " << want.tensors.size() << "\n";
    ++mismatches;
  }
  if (got->metadata != want.metadata) {
    std::cerr << "metadata differs\n";
    ++mismatches;
  }
  if (mismatches) return 1;
  std::cout << "read " << got->tensors.size() << " tensors from " << path << ", all equal\n";
  return 0;
}
