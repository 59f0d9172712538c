#include "maestro/checkpoint/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

namespace maestro::checkpoint {
namespace {

Tensor F32(std::vector<int64_t> shape, std::vector<float> values) {
  Tensor t;
  t.dtype = DType::kF32;
  t.shape = std::move(shape);
  t.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  return t;
}

// A file whose header is `header` (padded) followed by `data`.
std::string RawFile(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);  // little-endian host
  return out + header + data;
}

SafetensorsContent Sample() {
  SafetensorsContent c;
  c.tensors["w"] = F32({2, 2}, {1, 2, 3, 4});
  c.tensors["b"] = F32({2}, {5, 6});
  Tensor ids;
  ids.dtype = DType::kI64;
  ids.shape = {3};
  ids.bytes.assign(24, '\x01');
  c.tensors["ids"] = ids;
  c.metadata["format"] = "pt";
  return c;
}

TEST(SafetensorsTest, SerializeParseRoundTrip) {
  auto bytes = SerializeSafetensors(Sample());
  ASSERT_TRUE(bytes.ok());
  uint64_t header_len;
  std::memcpy(&header_len, bytes->data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  auto parsed = ParseSafetensors(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->metadata, Sample().metadata);
  ASSERT_EQ(parsed->tensors.size(), 3u);
  for (const auto& [name, tensor] : Sample().tensors) {
    EXPECT_EQ(parsed->tensors.at(name).bytes, tensor.bytes) << name;
    EXPECT_EQ(parsed->tensors.at(name).shape, tensor.shape) << name;
    EXPECT_EQ(parsed->tensors.at(name).dtype, tensor.dtype) << name;
  }
}

TEST(SafetensorsTest, TruncatedFileIsDataLoss) {
  std::string bytes = *SerializeSafetensors(Sample());
  for (size_t cut : {size_t{0}, size_t{4}, size_t{12}, bytes.size() - 1}) {
    auto parsed = ParseSafetensors(std::string_view(bytes).substr(0, cut));
    ASSERT_FALSE(parsed.ok()) << "cut " << cut;
    EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss) << parsed.status().ToString();
  }
}

TEST(SafetensorsTest, BadHeaderIsDataLoss) {
  auto parsed = ParseSafetensors(RawFile("{\"w\": [", ""));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(parsed.status().message().find("bad header"), std::string::npos);
  EXPECT_FALSE(ParseSafetensors(RawFile("[1, 2]", "")).ok());
  EXPECT_FALSE(ParseSafetensors(RawFile(R"({"w": {"dtype": "F32", "shape": [1]}})", "abcd")).ok());
}

TEST(SafetensorsTest, ImplausibleHeaderLengthIsRejectedWithoutAllocating) {
  std::string bytes(16, '\0');
  uint64_t huge = uint64_t{1} << 62;
  std::memcpy(bytes.data(), &huge, 8);
  auto parsed = ParseSafetensors(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss);
}

TEST(SafetensorsTest, UnknownDtypeNamesTensorAndDtype) {
  auto parsed = ParseSafetensors(
      RawFile(R"({"x": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", "ab"));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("'x'"), std::string::npos);
  EXPECT_NE(parsed.status().message().find("F8_E4M3"), std::string::npos);
}

TEST(SafetensorsTest, ShapeMismatchIsDataLoss) {
  auto parsed = ParseSafetensors(
      RawFile(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", "12345678"));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(parsed.status().message().find("needs 12 bytes"), std::string::npos);
}

TEST(SafetensorsTest, OverlapsAndHolesAreRejected) {
  const char* overlap = R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                        R"( "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})";
  EXPECT_FALSE(ParseSafetensors(RawFile(overlap, "123456")).ok());
  const char* hole = R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})";
  EXPECT_FALSE(ParseSafetensors(RawFile(hole, "1234")).ok());
  const char* out_of_range = R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}})";
  EXPECT_FALSE(ParseSafetensors(RawFile(out_of_range, "1234")).ok());
}

TEST(SafetensorsTest, SerializeRejectsInconsistentTensor) {
  SafetensorsContent c;
  c.tensors["bad"] = F32({3}, {1, 2});
  auto bytes = SerializeSafetensors(c);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  auto read = ReadSafetensors("/nonexistent/maestro.safetensors");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace maestro::checkpoint
