// How a worker starts one attempt's processes: the argv and the environment of each local
// process, decided from the assignment and the worker's settings alone (no I/O), so that every
// shape of trial can be checked by a unit test and another backend can reuse it.
//
// Shapes:
// - one process: a CPU trial of one slot, or a GPU trial of one slot on one node;
// - `mpirun -np N`: a CPU trial of N slots (Open MPI joins only ranks it started itself);
// - one process per slot, torchrun-style (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
//   MASTER_ADDR, MASTER_PORT): a GPU trial of several slots, or any trial of several nodes
//   (each node's worker starts its share; rank 0's node serves the rendezvous);
// - inside a Slurm allocation (the coordinator's Slurm backend: one worker for the whole
//   attempt), a trial of several nodes starts every rank from the batch node: `mpirun` over the
//   allocation for CPU ranks (Open MPI reads the allocation and starts its daemons with srun),
//   `srun` for GPU ranks (they take their places from SLURM_*, shared/slurm_env.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace maestro::worker {

struct LaunchInput {
  // The assignment.
  int64_t trial = 0, attempt = 0;
  std::string job;  // pretrain, finetune, linprobe
  bool resume = false;
  int64_t slots = 1;
  bool gpu = false;  // run.device is cuda
  int64_t nodes = 1, node_rank = 0;
  std::string master_addr;  // a gang's rank-0 address and port (nodes > 1)
  int64_t master_port = 0;
  bool slurm_allocation = false;  // the worker runs in the attempt's own Slurm allocation
  // The worker.
  std::string train_binary, mpirun, srun = "srun";
  std::string config_path;        // the assignment's config, written by the worker
  std::string rendezvous_record;  // where rank 0 records the rendezvous it served
  std::string ca_file;            // the cluster CA for the trainer's data-service calls
  std::string data_token_file;    // empty: no data token
  std::string lease_file;         // the worker's lease (empty: none)
  int64_t lease_timeout_ms = 0;
  std::string fence_file;         // run.output_dir/ATTEMPT
  std::string progress_file;      // where the ranks append progress records (progress_record.h)
  std::vector<std::string> gpus;  // the GPU of each of the attempt's slots, in order
  int64_t local_port = 29500;     // a free port for one node's local ranks to meet on
};

struct LaunchPlan {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // for every local process (NAME=value)
  // One entry per local process, added to `env`: a single process has one empty entry.
  std::vector<std::vector<std::string>> local_env;
};

LaunchPlan PlanLaunch(const LaunchInput& in);

// "3,5" (a worker's own CUDA_VISIBLE_DEVICES) and a slot id: that slot's GPU (the id-th entry;
// the id itself when the list is empty or shorter).
std::string GpuOfSlot(const std::string& visible_devices, int64_t slot);

}  // namespace maestro::worker
