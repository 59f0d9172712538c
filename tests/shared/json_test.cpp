#include "maestro/shared/json.h"

#include <gtest/gtest.h>

namespace maestro {
namespace {

TEST(JsonTest, ParsesNestedDocument) {
  auto json =
      Json::Parse(R"( {"a": [1, -2, 3.5e1, true, null], "b": {"c": "x\n\u00e9\ud83d\ude00"}} )");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  const auto& a = json->Find("a")->as_array();
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_EQ(a[1].as_int(), -2);
  EXPECT_DOUBLE_EQ(a[2].as_double(), 35.0);
  EXPECT_FALSE(a[2].is_int());
  EXPECT_TRUE(a[3].as_bool());
  EXPECT_TRUE(a[4].is_null());
  EXPECT_EQ(json->Find("b")->Find("c")->as_string(), "x\n\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(JsonTest, KeepsLargeIntegersExact) {
  auto json = Json::Parse("[9007199254740993, -9223372036854775808]");
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->as_array()[0].as_int(), 9007199254740993LL);
  EXPECT_EQ(json->as_array()[1].as_int(), INT64_MIN);
}

TEST(JsonTest, DumpRoundTrips) {
  Json::Object o;
  o["name"] = Json("q\"uote\\");
  o["list"] = Json(Json::Array{Json(1), Json(2.5), Json(false), Json()});
  Json value(o);
  auto again = Json::Parse(value.Dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, value);
  EXPECT_EQ(Json(1.0).Dump(), "1.0");
}

TEST(JsonTest, RejectsMalformedInput) {
  for (const char* bad :
       {"", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "1.", "\"\\x\"", "\"abc", "tru", "[1] 2",
        "{\"a\":1,\"a\":2}", "\"\\ud800\"", "99999999999999999999"}) {
    auto json = Json::Parse(bad);
    EXPECT_FALSE(json.ok()) << "accepted: " << bad;
    if (!json.ok()) {
      EXPECT_EQ(json.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(JsonTest, RejectsDeepNesting) {
  std::string deep(1000, '[');
  EXPECT_FALSE(Json::Parse(deep).ok());
}

TEST(JsonTest, WrongTypeAccessThrows) {
  Json value(3);
  EXPECT_THROW(value.as_string(), Error);
  EXPECT_EQ(value.Find("x"), nullptr);
}

}  // namespace
}  // namespace maestro
