// The TCPStore rendezvous of NCCL ranks, whichever launcher started them: torchrun-style
// (RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT, env_communicator.cpp) or mpirun (rank 0's
// address shared through MPI, mpi_communicator.cpp). Internal to maestro_dist.
#pragma once

#include <memory>
#include <string>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "maestro/dist/communicator.h"

namespace maestro::dist {

struct RendezvousPlace {
  std::string addr;  // rank 0's host
  int64_t port = 0;  // 0 at rank 0: the kernel picks one (read back into `port`)
  int64_t rank = 0, size = 1, local_rank = 0;
};

// Rank 0 serves the store at place.port (0: a free port, then written into place.port); the
// others connect to place.addr:place.port. UNAVAILABLE when that fails within the timeout.
Result<c10::intrusive_ptr<c10d::TCPStore>> OpenStore(RendezvousPlace& place,
                                                     const CommunicatorOptions& options);

// Every rank announces itself and reads the others (MAESTRO_RENDEZVOUS_RECORD=PREFIX: each rank
// writes what it saw to PREFIX.rank-<r>.json), then builds the NCCL back end on its CUDA
// device. Without CUDA (or NCCL in this LibTorch): FAILED_PRECONDITION saying that the ranks
// met and that `launcher`'s ranks need GPUs.
Result<std::unique_ptr<Communicator>> MeetOverStore(c10::intrusive_ptr<c10d::TCPStore> store,
                                                    const RendezvousPlace& place,
                                                    const CommunicatorOptions& options,
                                                    const std::string& launcher);

}  // namespace maestro::dist
