// Data-parallel communication: the collectives a training process needs, behind one
// interface with a back end per kind of tensor: one process (no communication); Open MPI for
// CPU tensors (MPI_Allreduce / MPI_Bcast on contiguous buffers; ranks started by `mpirun`,
// which Open MPI 4.1 requires); NCCL for CUDA tensors through c10d's ProcessGroupNCCL after a
// TCPStore rendezvous (ranks started torchrun-style or by mpirun).
//
// A collective that has not completed within the timeout (a peer died or hangs) ends the
// process with a clear error and the retryable exit status instead of hanging: the
// coordinator then restarts the whole gang from its last checkpoint. Not thread-safe: one
// thread issues the collectives, in the same order on every rank.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::dist {

struct CommunicatorOptions {
  double timeout_s = 300;  // a collective taking longer ends the process (exit 4)
  // Whether the run trains on CUDA (run.device cuda): its ranks meet in a TCPStore and
  // all-reduce over NCCL, also when mpirun started them (rank 0's address shared through MPI).
  bool cuda = false;
  // The trainer's stop-signal flag (SIGTERM/SIGINT). A collective still blocked half a second
  // after a stop signal arrived ends the process at once with a clear error (exit 4): the
  // launcher is stopping the job because a peer died (mpirun sends SIGTERM before SIGKILL).
  const std::atomic<int>* stop_signal = nullptr;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  virtual std::string backend() const = 0;  // "single", "mpi", "nccl"

  // Averages every tensor across ranks, in place. Tensors are contiguous float32 on this back
  // end's device; INVALID_ARGUMENT otherwise.
  virtual Status AllReduceMean(std::vector<torch::Tensor>& tensors) = 0;
  // Copies `root`'s tensors into every rank's, in place.
  virtual Status Broadcast(std::vector<torch::Tensor>& tensors, int64_t root) = 0;
  virtual Status Barrier() = 0;
  // Ends every rank of the job now (a fatal error on one rank).
  [[noreturn]] virtual void Abort(const std::string& reason) = 0;
};

// A world of one process: every collective is a no-op.
std::unique_ptr<Communicator> MakeSingleProcessCommunicator();

// The communicator this process was launched for: started by `mpirun` with more than one rank
// (OMPI_COMM_WORLD_SIZE > 1), Open MPI's for a CPU run, and for a CUDA run NCCL's after a
// TCPStore rendezvous at rank 0's host and a port it picked, both shared through MPI (local
// rank OMPI_COMM_WORLD_LOCAL_RANK); started torchrun-style (RANK, WORLD_SIZE > 1, LOCAL_RANK;
// or WORLD_SIZE 1 for a CUDA run), NCCL's after a TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT; else a single process. With
// MAESTRO_RENDEZVOUS_RECORD=PREFIX each rank of a rendezvous writes what it saw to
// PREFIX.rank-<r>.json. FAILED_PRECONDITION when launched by mpirun in a build without MPI, or
// for NCCL without CUDA or with a CPU run (after the rendezvous: CPU ranks come from mpirun);
// UNAVAILABLE when MPI cannot start or the rendezvous fails.
Result<std::unique_ptr<Communicator>> CommunicatorFromEnvironment(
    const CommunicatorOptions& options);

// Gradient synchronization: the parameters' gradients flattened into buckets of about
// `bucket_bytes` (one contiguous buffer each, so one all-reduce per bucket), averaged across
// ranks and copied back. Run once per optimizer step, after the last micro-batch of gradient
// accumulation. Parameters without a gradient (frozen) are skipped; their set must be the same
// on every rank.
class GradientSynchronizer {
 public:
  GradientSynchronizer(std::vector<torch::Tensor> parameters, int64_t bucket_bytes);
  Status AllReduce(Communicator& communicator);
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<std::vector<size_t>> buckets_;  // parameter indices per bucket
};

}  // namespace maestro::dist
