#include "maestro/shared/status.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "maestro/shared/file_util.h"

namespace maestro {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgumentError(std::to_string(x) + " is odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  MAESTRO_ASSIGN_OR_RETURN(int half, Half(x));
  return Half(half);
}

TEST(StatusTest, ResultCarriesValueOrStatus) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().ToString(), "INVALID_ARGUMENT: 3 is odd");
  EXPECT_THROW(r.value(), Error);
}

TEST(StatusTest, WithContextPrefixesMessage) {
  EXPECT_EQ(NotFoundError("x").WithContext("file a").ToString(), "NOT_FOUND: file a: x");
  EXPECT_TRUE(OkStatus().WithContext("ignored").ok());
}

TEST(FileUtilTest, AtomicWriteThenRead) {
  auto dir =
      std::filesystem::temp_directory_path() / ("maestro_file_util_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "f.bin").string();
  std::string payload("a\0b", 3);
  ASSERT_TRUE(WriteFileAtomic(path, payload).ok());
  ASSERT_TRUE(WriteFileAtomic(path, payload + "c").ok());  // replaces
  EXPECT_EQ(*ReadFile(path), payload + "c");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);  // no temp left
  EXPECT_EQ(ReadFile((dir / "missing").string()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadFile(dir.string()).status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace maestro

#include "maestro/shared/flags.h"

namespace maestro {
namespace {

TEST(FlagParserTest, ParsesTypedFlagsAndNamesErrors) {
  int64_t steps = 10;
  double lr = 0.5;
  std::string out = "x";
  bool verbose = false;
  FlagParser parser("prog", "does things");
  parser.Add("steps", &steps, "how many");
  parser.Add("lr", &lr, "rate");
  parser.Add("out", &out, "where");
  parser.Add("verbose", &verbose, "talk");
  const char* argv[] = {"prog", "--steps", "7", "--lr=0.25", "--verbose", "--out", "dir"};
  ASSERT_TRUE(parser.Parse(7, argv).ok());
  EXPECT_EQ(steps, 7);
  EXPECT_EQ(lr, 0.25);
  EXPECT_EQ(out, "dir");
  EXPECT_TRUE(verbose);
  EXPECT_NE(parser.Usage().find("--steps VALUE"), std::string::npos);
  EXPECT_NE(parser.Usage().find("(default: 10)"), std::string::npos);

  const char* bad_int[] = {"prog", "--steps", "7x"};
  auto status = parser.Parse(3, bad_int);
  EXPECT_NE(status.message().find("--steps"), std::string::npos);
  const char* unknown[] = {"prog", "--stepz", "1"};
  EXPECT_NE(parser.Parse(3, unknown).message().find("unknown flag --stepz"), std::string::npos);
  const char* missing[] = {"prog", "--lr"};
  EXPECT_FALSE(parser.Parse(2, missing).ok());
  const char* help[] = {"prog", "--help"};
  EXPECT_TRUE(parser.Parse(2, help).ok());
  EXPECT_TRUE(parser.help_requested());
}

}  // namespace
}  // namespace maestro

namespace maestro {
namespace {

TEST(FileUtilTest, DirectoryHelpers) {
  const std::string root = "/tmp/maestro_dirs_" + std::to_string(::getpid());
  ASSERT_TRUE(RemoveTree(root).ok());
  ASSERT_TRUE(MakeDirectories(root + "/a/b/c").ok());
  ASSERT_TRUE(MakeDirectories(root + "/a/b/c").ok());  // idempotent
  EXPECT_TRUE(IsDirectory(root + "/a/b/c"));
  ASSERT_TRUE(WriteFileAtomic(root + "/a/f.txt", "12345").ok());
  EXPECT_EQ(*FileSize(root + "/a/f.txt"), 5);
  auto names = *ListDirectory(root + "/a");
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"b", "f.txt"}));
  auto blocked = MakeDirectories(root + "/a/f.txt/sub");
  EXPECT_EQ(blocked.code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RemoveTree(root).ok());
  EXPECT_FALSE(PathExists(root));
  EXPECT_TRUE(RemoveTree(root).ok());  // already gone
  EXPECT_EQ(ListDirectory(root).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace maestro
