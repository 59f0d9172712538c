// The torchrun-style launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): every rank
// meets the others in c10d's TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it), then
// trains over NCCL (c10d's ProcessGroupNCCL) on CUDA tensors. Without a GPU (or without NCCL
// in this LibTorch) the rendezvous still happens, and then the process stops with the
// documented message: CPU ranks come from mpirun on one worker.
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "maestro/dist/communicator.h"
#include "maestro/shared/json.h"

namespace maestro::dist {
namespace {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoll(value) : fallback;
}

std::string HostName() {
  char name[256] = {};
  return gethostname(name, sizeof(name) - 1) == 0 ? name : "unknown";
}

#ifdef USE_C10D_NCCL
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(c10::intrusive_ptr<c10d::Store> store, int64_t rank, int64_t size,
                   const CommunicatorOptions& options)
      : rank_(rank), size_(size) {
    auto pg_options = c10d::ProcessGroupNCCL::Options::create();
    pg_options->timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
    group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(std::move(store), static_cast<int>(rank),
                                                         static_cast<int>(size), pg_options);
  }
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  Status AllReduceMean(std::vector<torch::Tensor>& tensors) override {
    for (auto& t : tensors) {
      if (!t.is_cuda())
        return InvalidArgumentError("all-reduce: the NCCL back end takes CUDA tensors");
      std::vector<at::Tensor> one = {t};
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      group_->allreduce(one, options)->wait();
      t.div_(static_cast<double>(size_));
    }
    return OkStatus();
  }
  Status Broadcast(std::vector<torch::Tensor>& tensors, int64_t root) override {
    for (auto& t : tensors) {
      std::vector<at::Tensor> one = {t};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      group_->broadcast(one, options)->wait();
    }
    return OkStatus();
  }
  Status Barrier() override {
    group_->barrier()->wait();
    return OkStatus();
  }
  [[noreturn]] void Abort(const std::string& reason) override {
    std::cerr << "error: rank " << rank_ << ": " << reason << "; aborting" << std::endl;
    group_->abort();
    std::_Exit(4);
  }

 private:
  int64_t rank_, size_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> group_;
};
#endif

}  // namespace

Result<std::unique_ptr<Communicator>> MakeEnvCommunicator(const CommunicatorOptions& options) {
  const int64_t rank = EnvInt("RANK", -1), size = EnvInt("WORLD_SIZE", -1);
  const int64_t local_rank = EnvInt("LOCAL_RANK", 0), port = EnvInt("MASTER_PORT", -1);
  const char* addr = std::getenv("MASTER_ADDR");
  if (rank < 0 || size < 1 || rank >= size || addr == nullptr || port <= 0 || port > 65535) {
    return InvalidArgumentError(
        "a torchrun-style launch needs RANK (0..WORLD_SIZE-1), WORLD_SIZE, MASTER_ADDR and "
        "MASTER_PORT (1..65535) in the environment");
  }
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(port);
  store_options.isServer = rank == 0;
  store_options.numWorkers = static_cast<std::size_t>(size);
  store_options.waitWorkers = true;
  store_options.timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  c10::intrusive_ptr<c10d::Store> store;
  Json::Array peers;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(addr, store_options);
    const std::string me = HostName() + " pid " + std::to_string(getpid());
    store->set("maestro/rank/" + std::to_string(rank), std::vector<uint8_t>(me.begin(), me.end()));
    std::vector<std::string> keys;
    for (int64_t r = 0; r < size; ++r) keys.push_back("maestro/rank/" + std::to_string(r));
    store->wait(keys);
    for (const auto& key : keys) {
      const auto value = store->get(key);
      peers.emplace_back(std::string(value.begin(), value.end()));
    }
    // Rank 0's process serves the store: it leaves only once every other rank has read the
    // others (a set needs no answer, so the others never wait on a server that may be gone).
    if (rank != 0) {
      const std::string left = "1";
      store->set("maestro/left/" + std::to_string(rank),
                 std::vector<uint8_t>(left.begin(), left.end()));
    } else {
      std::vector<std::string> left;
      for (int64_t r = 1; r < size; ++r) left.push_back("maestro/left/" + std::to_string(r));
      store->wait(left);
    }
  } catch (const std::exception& e) {
    return UnavailableError("rendezvous at " + std::string(addr) + ":" + std::to_string(port) +
                            " failed: " + e.what());
  }
  Json seen(Json::Object{{"rank", rank},
                         {"world_size", size},
                         {"local_rank", local_rank},
                         {"master_addr", addr},
                         {"master_port", port},
                         {"peers", Json(std::move(peers))}});
  std::cerr << "rendezvous: " << seen.Dump() << std::endl;
  if (const char* record = std::getenv("MAESTRO_RENDEZVOUS_RECORD")) {
    std::ofstream(record) << seen.Dump() << "\n";
  }
#ifdef USE_C10D_NCCL
  if (torch::cuda::is_available()) {
    try {
      return std::unique_ptr<Communicator>(new NcclCommunicator(store, rank, size, options));
    } catch (const std::exception& e) {
      return UnavailableError(std::string("NCCL: ") + e.what());
    }
  }
#endif
  return FailedPreconditionError(
      "the " + std::to_string(size) + " ranks met at " + std::string(addr) + ":" +
      std::to_string(port) +
      ", but a torchrun-style (RANK / WORLD_SIZE) data-parallel run trains over NCCL and "
      "needs CUDA GPUs, which this machine lacks; CPU ranks are started by mpirun on one worker "
      "(a trial's slots_per_trial on one node)");
}

}  // namespace maestro::dist
