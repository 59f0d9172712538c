#include "maestro/shared/path_roots.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "maestro/shared/file_util.h"

namespace maestro {
namespace {

TEST(NormalizeAbsolutePath, RemovesDotsAndSlashesRefusesParentAndRelative) {
  EXPECT_EQ(*NormalizeAbsolutePath("/a//b/./c/"), "/a/b/c");
  EXPECT_EQ(*NormalizeAbsolutePath("/"), "/");
  EXPECT_EQ(*NormalizeAbsolutePath("//."), "/");
  EXPECT_EQ(NormalizeAbsolutePath("/data/../etc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeAbsolutePath("/data/..").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeAbsolutePath("data/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeAbsolutePath("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeAbsolutePath(std::string("/a\0b", 4)).status().code(),
            StatusCode::kInvalidArgument);
  // "..." and "..x" are names, not parents.
  EXPECT_EQ(*NormalizeAbsolutePath("/a/.../..x"), "/a/.../..x");
}

TEST(PathIsUnder, ComponentBoundaries) {
  EXPECT_TRUE(PathIsUnder("/data", "/data"));
  EXPECT_TRUE(PathIsUnder("/data/x", "/data"));
  EXPECT_FALSE(PathIsUnder("/database", "/data"));  // a prefix of the name is not a parent
  EXPECT_FALSE(PathIsUnder("/dat", "/data"));
  EXPECT_TRUE(PathIsUnder("/anything", "/"));
}

TEST(PathRoots, LexicalCheckNamesTheRoots) {
  auto roots = PathRoots::Make({"/data/", "/weights"}, "--data-root", false);
  ASSERT_TRUE(roots.ok()) << roots.status().ToString();
  EXPECT_EQ(roots->Describe(), "/data, /weights");
  EXPECT_TRUE(roots->Check("path", "/data/fmnist", false).ok());
  EXPECT_TRUE(roots->Check("path", "/weights/./mae.safetensors", false).ok());
  Status outside = roots->Check("path", "/etc/shadow", false);
  EXPECT_EQ(outside.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(outside.message().find("is outside --data-root (/data, /weights)"), std::string::npos)
      << outside.message();
  EXPECT_EQ(roots->Check("path", "/data/../etc/shadow", false).code(),
            StatusCode::kInvalidArgument);
  PathRoots none;
  EXPECT_EQ(none.Check("path", "/data/x", false).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(PathRoots::Make({"relative"}, "--data-root", false).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(PathRoots, ResolvedCheckFollowsSymlinksOutOfARoot) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("path_roots_" + std::to_string(getpid()));
  ASSERT_TRUE(MakeDirectories(dir + "/root/inside").ok());
  ASSERT_TRUE(MakeDirectories(dir + "/outside").ok());
  ASSERT_EQ(symlink((dir + "/outside").c_str(), (dir + "/root/escape").c_str()), 0);
  ASSERT_EQ(symlink((dir + "/root/inside").c_str(), (dir + "/link-to-inside").c_str()), 0);
  auto roots = PathRoots::Make({dir + "/root"}, "--runs-root", true);
  ASSERT_TRUE(roots.ok());
  EXPECT_TRUE(roots->Check("run.output_dir", dir + "/root/inside/new/deeper", true).ok());
  // Lexically inside, resolved outside: refused, and the resolved place is named.
  Status escaped = roots->Check("run.output_dir", dir + "/root/escape/trial-1", true);
  EXPECT_EQ(escaped.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(escaped.message().find(dir + "/outside/trial-1"), std::string::npos)
      << escaped.message();
  EXPECT_TRUE(roots->Check("run.output_dir", dir + "/root/escape/trial-1", false).ok());
  // Lexically outside, resolved inside: allowed.
  EXPECT_TRUE(roots->Check("data.path", dir + "/link-to-inside/x", true).ok());
  // A root given through a symlink is resolved too.
  auto linked = PathRoots::Make({dir + "/link-to-inside"}, "--data-root", true);
  ASSERT_TRUE(linked.ok());
  EXPECT_TRUE(linked->Check("data.path", dir + "/root/inside/x", true).ok());
  ASSERT_TRUE(RemoveTree(dir).ok());
}

}  // namespace
}  // namespace maestro
