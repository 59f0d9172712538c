// RunCommand: no shell, exactly the environment given, output and status collected, a program
// past its timeout killed.
#include "maestro/shared/subprocess.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace maestro {
namespace {

TEST(RunCommandTest, ArgumentsReachTheProgramUnparsed) {
  auto r = RunCommand({"printf", "%s|", "a b", "$(id)", "'"}, {"PATH=/usr/bin:/bin"}, 10000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, "a b|$(id)|'|");
}

TEST(RunCommandTest, TheEnvironmentIsExactlyTheOneGiven) {
  auto r = RunCommand({"/usr/bin/env"}, {"ONLY=this"}, 10000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "ONLY=this\n");
}

TEST(RunCommandTest, StatusSignalAndStderrAreReported) {
  auto r = RunCommand({"/bin/sh", "-c", "echo oops >&2; exit 7"}, {}, 10000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->Describe(), "exit 7: oops");
  r = RunCommand({"/bin/sh", "-c", "kill -9 $$"}, {}, 10000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->signal, 9);
  EXPECT_EQ(RunCommand({"no-such-program-here"}, {"PATH=/usr/bin"}, 1000).status().code(),
            StatusCode::kUnavailable);
}

TEST(RunCommandTest, AProgramPastItsTimeoutIsKilled) {
  const auto start = std::chrono::steady_clock::now();
  auto r = RunCommand({"/bin/sleep", "30"}, {}, 300);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->signal, 9);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace maestro
