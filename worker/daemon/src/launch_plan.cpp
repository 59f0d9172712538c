#include "maestro/worker/launch_plan.h"

#include <algorithm>

#include "maestro/shared/progress_record.h"

namespace maestro::worker {

LaunchPlan PlanLaunch(const LaunchInput& in) {
  LaunchPlan plan;
  const int64_t slots = std::max<int64_t>(1, in.slots);
  const int64_t nodes = std::max<int64_t>(1, in.nodes);
  // Several nodes inside the attempt's own allocation: every rank started from here.
  const bool allocation_gang = nodes > 1 && in.slurm_allocation;
  const bool mpi = (slots > 1 || allocation_gang) && !in.gpu;
  const bool per_slot = slots > 1 && in.gpu && !allocation_gang;
  if (mpi && allocation_gang) {
    plan.argv = {in.mpirun,
                 "-np",
                 std::to_string(nodes * slots),
                 "--map-by",
                 "ppr:" + std::to_string(slots) + ":node",
                 "--bind-to",
                 "none"};
  } else if (mpi) {
    plan.argv = {in.mpirun, "-np", std::to_string(slots), "--bind-to", "none"};
  } else if (allocation_gang) {
    plan.argv = {in.srun, "--nodes=" + std::to_string(nodes),
                 "--ntasks=" + std::to_string(nodes * slots),
                 "--ntasks-per-node=" + std::to_string(slots), "--kill-on-bad-exit=1"};
  }
  for (const std::string& arg :
       {in.train_binary, in.job, std::string("--config"), in.config_path}) {
    plan.argv.push_back(arg);
  }
  if (in.resume) plan.argv.insert(plan.argv.end(), {"--resume", "auto"});

  plan.env = {"MAESTRO_TRIAL=" + std::to_string(in.trial),
              "MAESTRO_ATTEMPT=" + std::to_string(in.attempt)};
  // Secrets travel in files (argv and the environment are readable in /proc): the environment
  // names them.
  if (!in.data_token_file.empty())
    plan.env.push_back("MAESTRO_DATA_TOKEN_FILE=" + in.data_token_file);
  if (!in.ca_file.empty()) plan.env.push_back("MAESTRO_CA=" + in.ca_file);
  plan.env.push_back("MAESTRO_TOKEN_FILE=");  // the worker's own credential is not the trainer's
  if (!in.lease_file.empty()) {
    plan.env.push_back("MAESTRO_LEASE_FILE=" + in.lease_file);
    plan.env.push_back("MAESTRO_LEASE_TIMEOUT_MS=" + std::to_string(in.lease_timeout_ms));
  }
  if (!in.fence_file.empty()) plan.env.push_back("MAESTRO_ATTEMPT_FENCE=" + in.fence_file);
  if (!in.progress_file.empty()) {
    plan.env.push_back(std::string(kProgressFileEnv) + "=" + in.progress_file);
  }

  plan.local_env = {{}};
  if (!allocation_gang && (nodes > 1 || per_slot)) {
    // A gang's nodes meet at rank 0's address and port (from the coordinator); one node's
    // local ranks on this machine.
    const int64_t local = per_slot ? slots : 1;
    const int64_t node_rank = nodes > 1 ? in.node_rank : 0;
    const std::string master_addr = nodes > 1 ? in.master_addr : "127.0.0.1";
    const int64_t master_port = nodes > 1 ? in.master_port : in.local_port;
    plan.env.insert(
        plan.env.end(),
        {"WORLD_SIZE=" + std::to_string(nodes * local), "LOCAL_WORLD_SIZE=" + std::to_string(local),
         "MASTER_ADDR=" + master_addr, "MASTER_PORT=" + std::to_string(master_port),
         "MAESTRO_RENDEZVOUS_RECORD=" + in.rendezvous_record});
    plan.local_env.clear();
    for (int64_t i = 0; i < local; ++i) {
      plan.local_env.push_back(
          {"RANK=" + std::to_string(node_rank * local + i), "LOCAL_RANK=" + std::to_string(i)});
    }
  }
  if (in.gpu && !allocation_gang) {
    // The attempt's own GPUs (an allocation's srun gives each rank its GPUs itself): local rank i's
    // cuda:i is its i-th slot's device.
    std::string visible;
    for (const std::string& gpu : in.gpus) visible += (visible.empty() ? "" : ",") + gpu;
    plan.env.push_back("CUDA_VISIBLE_DEVICES=" + visible);
  }
  if (mpi) {
    // The worker's slots are the authority (mpirun would count cores); as root mpirun needs
    // both confirmations.
    plan.env.insert(plan.env.end(),
                    {"OMPI_MCA_rmaps_base_oversubscribe=1", "OMPI_ALLOW_RUN_AS_ROOT=1",
                     "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"});
  }
  return plan;
}

std::string GpuOfSlot(const std::string& visible_devices, int64_t slot) {
  if (!visible_devices.empty()) {
    std::vector<std::string> gpus;
    size_t start = 0;
    while (start <= visible_devices.size()) {
      const size_t end = std::min(visible_devices.find(',', start), visible_devices.size());
      gpus.push_back(visible_devices.substr(start, end - start));
      start = end + 1;
    }
    if (slot >= 0 && slot < static_cast<int64_t>(gpus.size())) {
      return gpus[static_cast<size_t>(slot)];
    }
  }
  return std::to_string(slot);
}

}  // namespace maestro::worker
