#include "maestro/worker/launch_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace maestro::worker {
namespace {

bool Has(const std::vector<std::string>& env, const std::string& entry) {
  return std::find(env.begin(), env.end(), entry) != env.end();
}

bool HasName(const std::vector<std::string>& env, const std::string& name) {
  return std::any_of(env.begin(), env.end(),
                     [&](const std::string& e) { return e.rfind(name + "=", 0) == 0; });
}

LaunchInput Base() {
  LaunchInput in;
  in.trial = 7;
  in.attempt = 2;
  in.job = "pretrain";
  in.train_binary = "/opt/maestro-train";
  in.mpirun = "/usr/bin/mpirun";
  in.config_path = "/w/configs/trial-7-attempt-2.json";
  in.rendezvous_record = "/w/logs/trial-7-attempt-2.rendezvous";
  in.ca_file = "/c/ca.crt";
  in.data_token_file = "/w/secrets/trial-7-attempt-2.data-token";
  in.lease_file = "/w/lease";
  in.lease_timeout_ms = 10000;
  in.fence_file = "/runs/trial-7/pretrain/ATTEMPT";
  in.progress_file = "/w/logs/trial-7-attempt-2.progress";
  in.local_port = 41234;
  return in;
}

TEST(PlanLaunch, OneCpuProcess) {
  LaunchPlan plan = PlanLaunch(Base());
  EXPECT_EQ(plan.argv, (std::vector<std::string>{"/opt/maestro-train", "pretrain", "--config",
                                                 "/w/configs/trial-7-attempt-2.json"}));
  ASSERT_EQ(plan.local_env.size(), 1u);
  EXPECT_TRUE(plan.local_env[0].empty());
  for (const char* entry :
       {"MAESTRO_TRIAL=7", "MAESTRO_ATTEMPT=2",
        "MAESTRO_DATA_TOKEN_FILE=/w/secrets/trial-7-attempt-2.data-token", "MAESTRO_CA=/c/ca.crt",
        "MAESTRO_TOKEN_FILE=", "MAESTRO_LEASE_FILE=/w/lease", "MAESTRO_LEASE_TIMEOUT_MS=10000",
        "MAESTRO_ATTEMPT_FENCE=/runs/trial-7/pretrain/ATTEMPT",
        "MAESTRO_PROGRESS_FILE=/w/logs/trial-7-attempt-2.progress"}) {
    EXPECT_TRUE(Has(plan.env, entry)) << entry;
  }
  for (const char* name :
       {"RANK", "WORLD_SIZE", "MASTER_ADDR", "CUDA_VISIBLE_DEVICES", "OMPI_ALLOW_RUN_AS_ROOT"}) {
    EXPECT_FALSE(HasName(plan.env, name)) << name;
  }
}

TEST(PlanLaunch, ResumeAndNoSecretOnTheCommandLine) {
  LaunchInput in = Base();
  in.resume = true;
  LaunchPlan plan = PlanLaunch(in);
  ASSERT_GE(plan.argv.size(), 2u);
  EXPECT_EQ(plan.argv[plan.argv.size() - 2], "--resume");
  EXPECT_EQ(plan.argv.back(), "auto");
  for (const auto& arg : plan.argv) EXPECT_EQ(arg.find("token"), std::string::npos) << arg;
  in.data_token_file.clear();
  EXPECT_FALSE(HasName(PlanLaunch(in).env, "MAESTRO_DATA_TOKEN_FILE"));
}

TEST(PlanLaunch, ACpuTrialOfSeveralSlotsIsOneMpirun) {
  LaunchInput in = Base();
  in.slots = 4;
  LaunchPlan plan = PlanLaunch(in);
  EXPECT_EQ(std::vector<std::string>(plan.argv.begin(), plan.argv.begin() + 6),
            (std::vector<std::string>{"/usr/bin/mpirun", "-np", "4", "--bind-to", "none",
                                      "/opt/maestro-train"}));
  ASSERT_EQ(plan.local_env.size(), 1u);  // mpirun starts the ranks
  EXPECT_TRUE(Has(plan.env, "OMPI_MCA_rmaps_base_oversubscribe=1"));
  EXPECT_TRUE(Has(plan.env, "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"));
  EXPECT_FALSE(HasName(plan.env, "RANK"));
  EXPECT_FALSE(HasName(plan.env, "CUDA_VISIBLE_DEVICES"));
}

TEST(PlanLaunch, AGpuTrialOfSeveralSlotsIsOneProcessPerSlotOnItsOwnGpus) {
  LaunchInput in = Base();
  in.slots = 2;
  in.gpu = true;
  in.gpus = {"3", "5"};
  LaunchPlan plan = PlanLaunch(in);
  EXPECT_EQ(plan.argv.front(), "/opt/maestro-train");  // no mpirun
  ASSERT_EQ(plan.local_env.size(), 2u);
  EXPECT_EQ(plan.local_env[0], (std::vector<std::string>{"RANK=0", "LOCAL_RANK=0"}));
  EXPECT_EQ(plan.local_env[1], (std::vector<std::string>{"RANK=1", "LOCAL_RANK=1"}));
  for (const char* entry : {"WORLD_SIZE=2", "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1",
                            "MASTER_PORT=41234", "CUDA_VISIBLE_DEVICES=3,5",
                            "MAESTRO_RENDEZVOUS_RECORD=/w/logs/trial-7-attempt-2.rendezvous"}) {
    EXPECT_TRUE(Has(plan.env, entry)) << entry;
  }
  EXPECT_FALSE(HasName(plan.env, "OMPI_ALLOW_RUN_AS_ROOT"));
}

TEST(PlanLaunch, AGangNodeRunsItsShareOfTheRanksAtRankZerosAddress) {
  LaunchInput in = Base();
  in.slots = 2;
  in.gpu = true;
  in.gpus = {"0", "1"};
  in.nodes = 3;
  in.node_rank = 2;
  in.master_addr = "10.0.0.5";
  in.master_port = 29511;
  LaunchPlan plan = PlanLaunch(in);
  ASSERT_EQ(plan.local_env.size(), 2u);
  EXPECT_EQ(plan.local_env[0], (std::vector<std::string>{"RANK=4", "LOCAL_RANK=0"}));
  EXPECT_EQ(plan.local_env[1], (std::vector<std::string>{"RANK=5", "LOCAL_RANK=1"}));
  for (const char* entry :
       {"WORLD_SIZE=6", "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=10.0.0.5", "MASTER_PORT=29511"}) {
    EXPECT_TRUE(Has(plan.env, entry)) << entry;
  }
  // A CPU gang: one process per node.
  in.gpu = false;
  in.slots = 1;
  plan = PlanLaunch(in);
  ASSERT_EQ(plan.local_env.size(), 1u);
  EXPECT_EQ(plan.local_env[0], (std::vector<std::string>{"RANK=2", "LOCAL_RANK=0"}));
  EXPECT_TRUE(Has(plan.env, "WORLD_SIZE=3"));
}

TEST(GpuOfSlot, MapsThroughTheWorkersOwnVisibleDevices) {
  EXPECT_EQ(GpuOfSlot("", 1), "1");
  EXPECT_EQ(GpuOfSlot("4,6", 0), "4");
  EXPECT_EQ(GpuOfSlot("4,6", 1), "6");
  EXPECT_EQ(GpuOfSlot("4,6", 2), "2");  // beyond the list: the id itself
}

// The Slurm backend's worker runs in the attempt's own allocation: a CPU trial of several nodes
// is one mpirun over it (Open MPI places ppr:slots:node), a GPU trial one srun; no torchrun
// variables (the ranks take theirs from Open MPI or SLURM_*), no CUDA_VISIBLE_DEVICES of ours.
TEST(PlanLaunch, SeveralNodesInsideASlurmAllocationStartEveryRankFromTheBatchNode) {
  LaunchInput in = Base();
  in.slurm_allocation = true;
  in.nodes = 2;
  in.slots = 3;
  LaunchPlan plan = PlanLaunch(in);
  const std::vector<std::string> mpi = {
      "/usr/bin/mpirun",    "-np",     "6", "--map-by", "ppr:3:node", "--bind-to", "none",
      "/opt/maestro-train", "pretrain"};
  ASSERT_GE(plan.argv.size(), mpi.size());
  EXPECT_EQ(std::vector<std::string>(plan.argv.begin(), plan.argv.begin() + mpi.size()), mpi);
  EXPECT_EQ(plan.local_env.size(), 1u);
  EXPECT_FALSE(HasName(plan.env, "MASTER_ADDR"));
  EXPECT_FALSE(HasName(plan.env, "WORLD_SIZE"));
  EXPECT_TRUE(Has(plan.env, "OMPI_ALLOW_RUN_AS_ROOT=1"));

  in.gpu = true;
  in.gpus = {"0", "1", "2"};
  plan = PlanLaunch(in);
  const std::vector<std::string> srun = {"srun",
                                         "--nodes=2",
                                         "--ntasks=6",
                                         "--ntasks-per-node=3",
                                         "--kill-on-bad-exit=1",
                                         "/opt/maestro-train"};
  ASSERT_GE(plan.argv.size(), srun.size());
  EXPECT_EQ(std::vector<std::string>(plan.argv.begin(), plan.argv.begin() + srun.size()), srun);
  EXPECT_EQ(plan.local_env.size(), 1u);
  EXPECT_FALSE(HasName(plan.env, "CUDA_VISIBLE_DEVICES"));
  EXPECT_FALSE(HasName(plan.env, "MASTER_ADDR"));

  // One node in an allocation: as on any worker.
  in.nodes = 1;
  in.gpu = false;
  in.slots = 1;
  plan = PlanLaunch(in);
  EXPECT_EQ(plan.argv.front(), "/opt/maestro-train");
}

}  // namespace
}  // namespace maestro::worker
