#include "maestro/dist/communicator.h"

#include <cstdlib>
#include <iostream>

#include "maestro/shared/exit_status.h"
#include "maestro/shared/slurm_env.h"

namespace maestro::dist {
namespace {

class SingleProcess final : public Communicator {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  Status AllReduceMean(std::vector<torch::Tensor>&) override { return OkStatus(); }
  Status Broadcast(std::vector<torch::Tensor>&, int64_t) override { return OkStatus(); }
  Status Barrier() override { return OkStatus(); }
  [[noreturn]] void Abort(const std::string& reason) override {
    std::cerr << "error: " << reason << std::endl;
    std::_Exit(kExitRetryableFailure);
  }
};

}  // namespace

#ifdef MAESTRO_HAVE_MPI
Result<std::unique_ptr<Communicator>> MakeMpiCommunicator(const CommunicatorOptions& options);
Result<std::unique_ptr<Communicator>> MakeMpiNcclCommunicator(const CommunicatorOptions& options);
#endif
Result<std::unique_ptr<Communicator>> MakeEnvCommunicator(const CommunicatorOptions& options);
Result<std::unique_ptr<Communicator>> MakeSlurmCommunicator(const SlurmRank& slurm,
                                                            const CommunicatorOptions& options);

std::unique_ptr<Communicator> MakeSingleProcessCommunicator() {
  return std::make_unique<SingleProcess>();
}

Result<std::unique_ptr<Communicator>> CommunicatorFromEnvironment(
    const CommunicatorOptions& options) {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size == nullptr || std::atoll(size) <= 1) {
    // torchrun-style: NCCL for more than one rank, and for one rank of a CUDA run (torchrun
    // --nproc-per-node 1), which then runs its collectives like any world's.
    const char* world = std::getenv("WORLD_SIZE");
    const int64_t world_size = world != nullptr ? std::atoll(world) : 0;
    if (world_size > 1 || (world_size == 1 && options.cuda && std::getenv("RANK") != nullptr)) {
      return MakeEnvCommunicator(options);
    }
    // srun's tasks: the same from SLURM_* (a batch script itself is no step: not a rank).
    if (world == nullptr) {
      MAESTRO_ASSIGN_OR_RETURN(auto slurm, SlurmRankFromEnvironment(std::getenv));
      if (slurm && (slurm->world_size > 1 || options.cuda)) {
        return MakeSlurmCommunicator(*slurm, options);
      }
    }
    return MakeSingleProcessCommunicator();
  }
#ifdef MAESTRO_HAVE_MPI
  return options.cuda ? MakeMpiNcclCommunicator(options) : MakeMpiCommunicator(options);
#else
  (void)options;
  return FailedPreconditionError(
      "started by mpirun with " + std::string(size) +
      " ranks, but this build has no MPI (the LibTorch-only build); use the full build");
#endif
}

GradientSynchronizer::GradientSynchronizer(std::vector<torch::Tensor> parameters,
                                           int64_t bucket_bytes)
    : parameters_(std::move(parameters)) {
  int64_t filled = 0;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (!parameters_[i].requires_grad()) continue;
    const int64_t bytes = parameters_[i].numel() * parameters_[i].element_size();
    if (buckets_.empty() || (filled > 0 && filled + bytes > bucket_bytes)) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().push_back(i);
    filled += bytes;
  }
}

Status GradientSynchronizer::AllReduce(Communicator& communicator) {
  if (communicator.backend() == "single") return OkStatus();
  torch::NoGradGuard no_grad;
  for (const auto& bucket : buckets_) {
    std::vector<torch::Tensor> grads;
    for (size_t i : bucket) {
      torch::Tensor& p = parameters_[i];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad().reshape({-1}));
    }
    std::vector<torch::Tensor> flat = {torch::cat(grads)};
    MAESTRO_RETURN_IF_ERROR(communicator.AllReduceMean(flat));
    int64_t offset = 0;
    for (size_t i : bucket) {
      torch::Tensor& p = parameters_[i];
      const int64_t n = p.numel();
      p.mutable_grad().copy_(flat[0].narrow(0, offset, n).view_as(p));
      offset += n;
    }
  }
  return OkStatus();
}

}  // namespace maestro::dist
