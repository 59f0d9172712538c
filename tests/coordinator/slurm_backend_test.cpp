// The Slurm backend's pure parts: the batch script (every word quoted by construction: run by a
// real /bin/sh with hostile settings, its program receives exactly the words given and nothing
// else runs), sbatch's argv, squeue's lines, job states, option checks.
#include "maestro/coordinator/slurm_backend.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "maestro/shared/subprocess.h"

namespace maestro::coordinator {
namespace {

std::string Temp(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/slurm-backend-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

SlurmOptions Options() {
  SlurmOptions o;
  o.partition = "gpu-a100";
  o.account = "mae.lab";
  o.worker_binary = "/opt/maestro/bin/maestro-worker";
  o.coordinator = "10.0.0.1:7071";
  o.ca_file = "/etc/maestro/ca.crt";
  return o;
}

TEST(SlurmBackendTest, ShellQuoteMakesOneWordOfAnything) {
  EXPECT_EQ(ShellQuote("plain"), "'plain'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote(""), "''");
}

// The script, run by /bin/sh, hands the worker exactly its words, hostile or not.
TEST(SlurmBackendTest, TheBatchScriptPassesHostileWordsUnchangedAndRunsNothingElse) {
  const std::string marker = Temp("pwned");
  const std::string args_out = Temp("args");
  std::filesystem::remove(marker);
  // A stand-in worker that writes each argument and the exported variable on its own line.
  const std::string fake = Temp("fake-worker");
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '" << args_out
      << "'\nprintf 'ENV=%s\\n' \"$HOSTILE_VALUE\" >> '" << args_out << "'\n";
  }
  chmod(fake.c_str(), 0755);
  SlurmOptions o = Options();
  o.worker_binary = fake;
  const std::string evil =
      "x'; touch " + marker + "; echo '$(touch " + marker + ")`touch " + marker + "`\"\n$HOME";
  o.data_roots = {"/data/" + evil};
  o.job_env = {"HOSTILE_VALUE=" + evil};
  const std::string script = BatchScript(o, "/runs", "slurm-7-2", "/runs/trial-7/slurm/attempt-2",
                                         "/runs/trial-7/slurm/attempt-2/worker.token", 3);
  const std::string path = Temp("job.sh");
  {
    std::ofstream f(path);
    f << script;
  }
  auto r = RunCommand({"/bin/sh", path}, {"PATH=/usr/bin:/bin"}, 10000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ok()) << r->Describe();
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the script ran a command from a setting";
  std::ifstream in(args_out);
  std::stringstream got;
  got << in.rdbuf();
  const std::string expected = std::string("--one-attempt\n--id\nslurm-7-2\n--coordinator\n") +
                               "10.0.0.1:7071\n--work-dir\n/runs/trial-7/slurm/attempt-2\n" +
                               "--runs-root\n/runs\n--slots\n3\n--data-root\n/data/" + evil +
                               "\n--ca\n/etc/maestro/ca.crt\n--token-file\n" +
                               "/runs/trial-7/slurm/attempt-2/worker.token\nENV=" + evil + "\n";
  EXPECT_EQ(got.str(), expected);
}

TEST(SlurmBackendTest, SbatchArgvAsksForTheAttemptsShapeWithoutASecretOrAShell) {
  AttemptPlan plan;
  plan.nodes = 2;
  plan.slots = 4;
  plan.device = "cuda";
  plan.cpu_cores = 32;
  plan.memory_mb = 64000;
  const auto argv =
      SbatchArgv(Options(), "maestro-abc-7-2", ShapeOf(plan), "/runs/t/a", "/runs/t/a/job.sh");
  const std::vector<std::string> expected = {"sbatch",
                                             "--parsable",
                                             "--no-requeue",
                                             "--job-name=maestro-abc-7-2",
                                             "--partition=gpu-a100",
                                             "--nodes=2",
                                             "--ntasks-per-node=4",
                                             "--time=1440",
                                             "--signal=B:USR2@120",
                                             "--output=/runs/t/a/slurm-%j.out",
                                             "--chdir=/runs/t/a",
                                             "--account=mae.lab",
                                             "--gres=gpu:4",
                                             "--cpus-per-task=8",
                                             "--mem=64000",
                                             "/runs/t/a/job.sh"};
  EXPECT_EQ(argv, expected);
  plan = AttemptPlan{};
  const auto cpu = SbatchArgv(Options(), "n", ShapeOf(plan), "/w", "/w/job.sh");
  for (const std::string& arg : cpu) {
    EXPECT_EQ(arg.find("--gres"), std::string::npos);
    EXPECT_EQ(arg.find("--mem"), std::string::npos);
  }
}

TEST(SlurmBackendTest, SqueueLinesAndStates) {
  const auto rows = ParseSqueue(
      "17|maestro-abc-3-1|RUNNING\n18|maestro-abc-4-1|PENDING  \n19_[1-3]|array|PENDING\n"
      "garbage\n20|x|y|COMPLETED\n");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].id, "17");
  EXPECT_EQ(rows[0].name, "maestro-abc-3-1");
  EXPECT_EQ(rows[1].state, "PENDING");
  EXPECT_EQ(rows[2].state, "y|COMPLETED");  // a name with '|' cannot be ours; kept as printed
  EXPECT_EQ(EndOfState("RUNNING"), SlurmEnd::kNotEnded);
  EXPECT_EQ(EndOfState("PENDING"), SlurmEnd::kNotEnded);
  EXPECT_EQ(EndOfState("COMPLETING"), SlurmEnd::kNotEnded);
  EXPECT_EQ(EndOfState("PREEMPTED"), SlurmEnd::kPreempted);
  EXPECT_EQ(EndOfState("TIMEOUT"), SlurmEnd::kTimeout);
  EXPECT_EQ(EndOfState("NODE_FAIL"), SlurmEnd::kNodeFailure);
  EXPECT_EQ(EndOfState("CANCELLED by 0"), SlurmEnd::kFailed);
  EXPECT_EQ(EndOfState("COMPLETED"), SlurmEnd::kFailed);
  EXPECT_EQ(EndOfState("GONE"), SlurmEnd::kFailed);
}

TEST(SlurmBackendTest, OptionsThatCouldSmuggleArgumentsAreRefused) {
  EXPECT_TRUE(CheckSlurmOptions(Options()).ok()) << CheckSlurmOptions(Options()).ToString();
  auto bad = [](auto change, const std::string& flag) {
    SlurmOptions o = Options();
    change(o);
    const Status s = CheckSlurmOptions(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << flag;
    EXPECT_NE(s.message().find(flag), std::string::npos) << s.ToString();
  };
  bad([](SlurmOptions& o) { o.partition = "debug --uid=0"; }, "--slurm-partition");
  bad([](SlurmOptions& o) { o.partition = ""; }, "--slurm-partition");
  bad([](SlurmOptions& o) { o.account = "a,b"; }, "--slurm-account");
  bad([](SlurmOptions& o) { o.worker_binary = "maestro-worker"; }, "--slurm-worker-binary");
  bad([](SlurmOptions& o) { o.job_env = {"1BAD=x"}; }, "--slurm-env");
  bad([](SlurmOptions& o) { o.job_env = {"NOVALUE"}; }, "--slurm-env");
  bad([](SlurmOptions& o) { o.signal_lead_s = 99999; }, "--slurm-signal-lead-s");
}

TEST(SlurmBackendTest, WorkerIdsOfAttemptsAreReserved) {
  EXPECT_EQ(SlurmWorkerId({12, 3}), "slurm-12-3");
  EXPECT_TRUE(IsSlurmWorkerId("slurm-12-3"));
  EXPECT_FALSE(IsSlurmWorkerId("node-slurm-1"));
}

}  // namespace
}  // namespace maestro::coordinator
