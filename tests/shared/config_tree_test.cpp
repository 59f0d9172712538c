#include "maestro/shared/config_tree.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace maestro {
namespace {

TEST(ParseConfigScalar, TypesNumbersAsTheYamlCoreSchemaDoes) {
  EXPECT_EQ(ParseConfigScalar("3")->as_int(), 3);
  EXPECT_EQ(ParseConfigScalar("-3")->as_int(), -3);
  EXPECT_EQ(ParseConfigScalar("+3")->as_int(), 3);
  EXPECT_DOUBLE_EQ(ParseConfigScalar("1e-4")->as_double(), 1e-4);
  EXPECT_DOUBLE_EQ(ParseConfigScalar(".5")->as_double(), 0.5);
  EXPECT_DOUBLE_EQ(ParseConfigScalar("5.")->as_double(), 5.0);
  EXPECT_DOUBLE_EQ(ParseConfigScalar("-1.5E+3")->as_double(), -1500.0);
  // Beyond int64: a double, as before.
  EXPECT_DOUBLE_EQ(ParseConfigScalar("99999999999999999999")->as_double(), 1e20);
  // Not numbers: strings.
  for (const char* text :
       {"e5", "1e", "-", "+", ".", "1.2.3", "0x10", "inf", "1e+", "--1", "1_000", " 1", "1 "}) {
    auto value = ParseConfigScalar(text);
    ASSERT_TRUE(value.ok()) << text;
    EXPECT_TRUE(value->is_string()) << text;
  }
  EXPECT_TRUE(ParseConfigScalar("true")->as_bool());
  EXPECT_TRUE(ParseConfigScalar("~")->is_null());
}

TEST(ParseConfigScalar, RefusesHugeNumbersInsteadOfRecursing) {
  EXPECT_TRUE(ParseConfigScalar(std::string(64, '7')).ok());
  const auto start = std::chrono::steady_clock::now();
  auto huge = ParseConfigScalar(std::string(50000, '9'));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  ASSERT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("(50000 characters) is longer than 64"), std::string::npos)
      << huge.status().message();
  EXPECT_EQ(ParseConfigScalar("1e999").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseConfigScalar("[1, " + std::string(100, '1') + "]").status().code(),
            StatusCode::kInvalidArgument);
  Json tree(Json::Object{});
  EXPECT_EQ(ApplyConfigOverride(tree, "optim.epochs=" + std::string(5000, '1')).code(),
            StatusCode::kInvalidArgument);
}

TEST(ParseConfigText, AliasBombsAndDeepNestingAreRefused) {
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    const std::string name = std::to_string(i), previous = std::to_string(i - 1);
    bomb.append("a").append(name).append(": &a").append(name).append(" [");
    for (int j = 0; j < 10; ++j) bomb.append(j ? ", *a" : "*a").append(previous);
    bomb.append("]\n");
  }
  const auto start = std::chrono::steady_clock::now();
  auto exploded = ParseConfigText(bomb, "bomb.yaml");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_EQ(exploded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(exploded.status().message().find("expands to more than 200000 values"),
            std::string::npos)
      << exploded.status().message();
  // A few aliases are fine.
  auto small = ParseConfigText("base: &b {lr: 1}\nrun: *b\n", "small.yaml");
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(small->Find("run")->Find("lr")->as_int(), 1);
  std::string deep;
  for (int i = 0; i < 70; ++i) deep += "[";
  for (int i = 0; i < 70; ++i) deep += "]";
  EXPECT_EQ(ParseConfigText("x: " + deep + "\n", "deep.yaml").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ConfigValue, FindsAndErasesDottedKeys) {
  Json tree(Json::Object{});
  ASSERT_TRUE(SetConfigValue(tree, "data.path", Json("/data/x")).ok());
  ASSERT_TRUE(SetConfigValue(tree, "run.threads", Json(int64_t{2})).ok());
  ASSERT_NE(FindConfigValue(tree, "data.path"), nullptr);
  EXPECT_EQ(FindConfigValue(tree, "data.path")->as_string(), "/data/x");
  EXPECT_EQ(FindConfigValue(tree, "data.service"), nullptr);
  EXPECT_EQ(FindConfigValue(tree, "run.threads.deeper"), nullptr);  // a number is no mapping
  EXPECT_EQ(FindConfigValue(tree, "nothing.here"), nullptr);
  EraseConfigValue(tree, "data.path");
  EraseConfigValue(tree, "data.missing");  // absent: nothing happens
  EraseConfigValue(tree, "run.threads.deeper");
  EXPECT_EQ(FindConfigValue(tree, "data.path"), nullptr);
  EXPECT_NE(FindConfigValue(tree, "data"), nullptr);
  EXPECT_EQ(FindConfigValue(tree, "run.threads")->as_int(), 2);
}

}  // namespace
}  // namespace maestro
