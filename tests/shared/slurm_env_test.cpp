// A rank started by srun: its place from the SLURM_* variables of a job step, nothing outside a
// step (a batch script), and refusals naming the variable.
#include "maestro/shared/slurm_env.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace maestro {
namespace {

EnvLookup Env(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::map<std::string, std::string> Step() {
  return {{"SLURM_STEP_ID", "0"},
          {"SLURM_STEP_NUM_TASKS", "16"},
          {"SLURM_PROCID", "9"},
          {"SLURM_LOCALID", "1"},
          {"SLURM_JOB_ID", "123456"},
          {"SLURM_STEP_NODELIST", "gpu[07-14]"},
          {"SLURM_JOB_NODELIST", "gpu[01-20]"}};
}

TEST(SlurmEnvTest, ARankOfAStep) {
  auto rank = SlurmRankFromEnvironment(Env(Step()));
  ASSERT_TRUE(rank.ok()) << rank.status().ToString();
  ASSERT_TRUE(rank->has_value());
  const SlurmRank& r = **rank;
  EXPECT_EQ(r.rank, 9);
  EXPECT_EQ(r.world_size, 16);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.job_id, 123456);
  EXPECT_EQ(r.first_host, "gpu07") << "the step's nodes, not the whole allocation's";
  EXPECT_EQ(r.port, 20000 + 123456 % 20000);
  auto vars = Step();
  vars["MASTER_PORT"] = "29500";
  vars.erase("SLURM_STEP_NODELIST");
  rank = SlurmRankFromEnvironment(Env(vars));
  ASSERT_TRUE(rank.ok() && rank->has_value());
  EXPECT_EQ((*rank)->port, 29500);
  EXPECT_EQ((*rank)->first_host, "gpu01");
}

TEST(SlurmEnvTest, ABatchScriptIsNoRank) {
  auto vars = Step();
  vars.erase("SLURM_STEP_ID");
  vars.erase("SLURM_STEP_NUM_TASKS");
  auto rank = SlurmRankFromEnvironment(Env(vars));
  ASSERT_TRUE(rank.ok());
  EXPECT_FALSE(rank->has_value());
  EXPECT_FALSE(SlurmRankFromEnvironment(Env({})).value().has_value());
}

TEST(SlurmEnvTest, ValuesSlurmWouldNeverSetAreRefused) {
  auto refused = [](const std::string& name, const std::string& value) {
    auto vars = Step();
    if (value.empty()) {
      vars.erase(name);
      vars.erase("SLURM_JOB_NODELIST");
    } else {
      vars[name] = value;
    }
    auto rank = SlurmRankFromEnvironment(Env(vars));
    EXPECT_EQ(rank.status().code(), StatusCode::kInvalidArgument) << name << "=" << value;
    return rank.status().message();
  };
  EXPECT_NE(refused("SLURM_PROCID", "16").find("SLURM_PROCID"), std::string::npos);
  EXPECT_NE(refused("SLURM_PROCID", "-1").find("SLURM_PROCID"), std::string::npos);
  EXPECT_NE(refused("SLURM_STEP_NUM_TASKS", "0").find("SLURM_STEP_NUM_TASKS"), std::string::npos);
  EXPECT_NE(refused("SLURM_LOCALID", "x").find("SLURM_LOCALID"), std::string::npos);
  EXPECT_NE(refused("SLURM_STEP_NODELIST", "gpu[1-").find("SLURM_STEP_NODELIST"),
            std::string::npos);
  EXPECT_NE(refused("SLURM_STEP_NODELIST", "").find("SLURM_STEP_NODELIST"), std::string::npos);
}

}  // namespace
}  // namespace maestro
