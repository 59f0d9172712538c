// The Open MPI back end: MPI_Allreduce / MPI_Bcast on contiguous float32 CPU buffers, with a
// watchdog that ends the process when a collective outlives the timeout. And NCCL ranks
// started by mpirun: MPI shares rank 0's TCPStore address, NCCL does the rest.
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "maestro/dist/communicator.h"
#include "maestro/shared/exit_status.h"
#include "maestro/shared/ids.h"
#include "store_rendezvous.h"

namespace maestro::dist {
namespace {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const CommunicatorOptions& options) : options_(options) {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rank_ = rank;
    size_ = size;
    watchdog_ = std::thread([this] { Watch(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    MPI_Finalize();
  }

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  Status AllReduceMean(std::vector<torch::Tensor>& tensors) override {
    for (auto& t : tensors) {
      MAESTRO_RETURN_IF_ERROR(Check(t, "all-reduce"));
      Guarded("all-reduce", [&] {
        return MPI_Allreduce(MPI_IN_PLACE, t.data_ptr<float>(), static_cast<int>(t.numel()),
                             MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      });
      t.div_(static_cast<double>(size_));
    }
    return OkStatus();
  }

  Status Broadcast(std::vector<torch::Tensor>& tensors, int64_t root) override {
    for (auto& t : tensors) {
      MAESTRO_RETURN_IF_ERROR(Check(t, "broadcast"));
      Guarded("broadcast", [&] {
        return MPI_Bcast(t.data_ptr<float>(), static_cast<int>(t.numel()), MPI_FLOAT,
                         static_cast<int>(root), MPI_COMM_WORLD);
      });
    }
    return OkStatus();
  }

  Status Barrier() override {
    Guarded("barrier", [] { return MPI_Barrier(MPI_COMM_WORLD); });
    return OkStatus();
  }

  [[noreturn]] void Abort(const std::string& reason) override {
    std::cerr << "error: rank " << rank_ << ": " << reason << "; aborting every rank" << std::endl;
    MPI_Abort(MPI_COMM_WORLD, kExitRetryableFailure);
    std::_Exit(kExitRetryableFailure);
  }

 private:
  static Status Check(const torch::Tensor& t, const char* what) {
    if (!t.device().is_cpu() || t.scalar_type() != torch::kFloat32 || !t.is_contiguous()) {
      return InvalidArgumentError(std::string(what) +
                                  ": the MPI back end takes contiguous float32 CPU tensors");
    }
    if (t.numel() > INT32_MAX)
      return InvalidArgumentError(std::string(what) + ": over 2^31 values");
    return OkStatus();
  }

  // Runs one collective under the watchdog.
  template <typename Call>
  void Guarded(const char* what, Call call) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      what_ = what;
      deadline_ = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(options_.timeout_s));
      armed_ = true;
    }
    cv_.notify_all();
    const int code = call();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      armed_ = false;
    }
    if (code != MPI_SUCCESS) Abort(std::string("MPI ") + what + " failed");
  }

  // Ends the process when a collective passes its deadline (a peer is gone or hangs, and MPI
  // would wait for it forever), or stays blocked half a second after a stop signal.
  void Watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    std::optional<std::chrono::steady_clock::time_point> signalled;
    while (!stopping_) {
      if (!armed_) {
        signalled.reset();
        cv_.wait(lock);
        continue;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (!armed_ || stopping_) continue;
      const auto now = std::chrono::steady_clock::now();
      if (options_.stop_signal != nullptr && options_.stop_signal->load() != 0) {
        if (!signalled) signalled = now;
        if (now - *signalled >= std::chrono::milliseconds(500)) {
          std::fprintf(stderr,
                       "error: rank %lld: %s still waiting for a peer when the job was told to "
                       "stop (signal %d): a peer rank died; exiting so the gang restarts from its "
                       "last checkpoint\n",
                       static_cast<long long>(rank_), what_, options_.stop_signal->load());
          std::fflush(stderr);
          std::_Exit(kExitRetryableFailure);
        }
      }
      if (now >= deadline_) {
        std::fprintf(stderr,
                     "error: rank %lld: %s did not complete within %.0f s (dist.timeout_s): a "
                     "peer rank died or hangs; exiting so the gang restarts from its last "
                     "checkpoint\n",
                     static_cast<long long>(rank_), what_, options_.timeout_s);
        std::fflush(stderr);
        std::_Exit(kExitRetryableFailure);
      }
    }
  }

  CommunicatorOptions options_;
  int64_t rank_ = 0, size_ = 1;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool armed_ = false, stopping_ = false;
  const char* what_ = "";
  std::chrono::steady_clock::time_point deadline_;
  std::thread watchdog_;
};

// NCCL ranks started by mpirun: MPI only shares rank 0's store address, NCCL carries the
// collectives; MPI is finalized when the communicator goes.
class MpiLaunchedNccl final : public Communicator {
 public:
  explicit MpiLaunchedNccl(std::unique_ptr<Communicator> nccl) : nccl_(std::move(nccl)) {}
  ~MpiLaunchedNccl() override {
    nccl_.reset();
    MPI_Finalize();
  }
  int64_t rank() const override { return nccl_->rank(); }
  int64_t world_size() const override { return nccl_->world_size(); }
  std::string backend() const override { return nccl_->backend(); }
  Status AllReduceMean(std::vector<torch::Tensor>& tensors) override {
    return nccl_->AllReduceMean(tensors);
  }
  Status Broadcast(std::vector<torch::Tensor>& tensors, int64_t root) override {
    return nccl_->Broadcast(tensors, root);
  }
  Status Barrier() override { return nccl_->Barrier(); }
  [[noreturn]] void Abort(const std::string& reason) override {
    nccl_->Abort(reason);
    std::_Exit(kExitRetryableFailure);  // not reached: the NCCL back end's Abort ends the process
  }

 private:
  std::unique_ptr<Communicator> nccl_;
};

Status InitMpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return OkStatus();
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    return UnavailableError("MPI_Init_thread failed");
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<Communicator>> MakeMpiCommunicator(const CommunicatorOptions& options) {
  MAESTRO_RETURN_IF_ERROR(InitMpi());
  return std::unique_ptr<Communicator>(new MpiCommunicator(options));
}

Result<std::unique_ptr<Communicator>> MakeMpiNcclCommunicator(const CommunicatorOptions& options) {
  MAESTRO_RETURN_IF_ERROR(InitMpi());
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  RendezvousPlace place;
  place.rank = rank;
  place.size = size;
  const char* local_rank = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  place.local_rank = local_rank != nullptr ? std::atoll(local_rank) : 0;
  // Rank 0 serves the store on a port the kernel picks and shares "host port" (an empty host:
  // it could not); MASTER_ADDR, when set, names its host for the others.
  Result<c10::intrusive_ptr<c10d::TCPStore>> store = UnavailableError("no store");
  char shared[512] = {};
  if (rank == 0) {
    const char* master = std::getenv("MASTER_ADDR");
    place.addr = master != nullptr && *master != '\0' ? master : HostName("unknown");
    store = OpenStore(place, options);
    if (store.ok()) {
      std::snprintf(shared, sizeof(shared), "%s %lld", place.addr.c_str(),
                    static_cast<long long>(place.port));
    }
  }
  MPI_Bcast(shared, sizeof(shared), MPI_CHAR, 0, MPI_COMM_WORLD);
  if (rank != 0) {
    const std::string text = shared;
    const size_t space = text.rfind(' ');
    if (space == std::string::npos) {
      MPI_Finalize();
      return UnavailableError("rank 0 could not open the rendezvous store (see its error)");
    }
    place.addr = text.substr(0, space);
    place.port = std::atoll(text.c_str() + space + 1);
    store = OpenStore(place, options);
  }
  Result<std::unique_ptr<Communicator>> nccl =
      store.ok() ? MeetOverStore(*store, place, options, "an mpirun-launched")
                 : Result<std::unique_ptr<Communicator>>(store.status());
  if (!nccl.ok()) {
    MPI_Finalize();
    return nccl.status();
  }
  return std::unique_ptr<Communicator>(new MpiLaunchedNccl(std::move(*nccl)));
}

}  // namespace maestro::dist
