// The NCCL back end and its TCPStore rendezvous (store_rendezvous.h), the torchrun-style
// launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and srun's (the same from
// SLURM_* variables, shared/slurm_env.h): every rank meets the others
// in c10d's TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it), then trains over NCCL
// (c10d's ProcessGroupNCCL) on CUDA tensors. Without a GPU (or without NCCL in this LibTorch)
// the rendezvous still happens, and then the process stops with the documented message: CPU
// ranks come from mpirun on one worker.
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <netdb.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "maestro/dist/communicator.h"
#include "maestro/shared/exit_status.h"
#include "maestro/shared/ids.h"
#include "maestro/shared/json.h"
#include "maestro/shared/slurm_env.h"
#include "store_rendezvous.h"

namespace maestro::dist {
namespace {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoll(value) : fallback;
}

#ifdef USE_C10D_NCCL
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(c10::intrusive_ptr<c10d::Store> store, int64_t rank, int64_t size,
                   int64_t device_index, const CommunicatorOptions& options)
      : rank_(rank), size_(size), device_index_(device_index) {
    // c10d's watchdog ends the process when a collective outlives the timeout (a dead or hung
    // peer) instead of letting it hang: mode 3 (abort without cleanup, which could itself hang),
    // set here so it does not depend on the LibTorch version's default. Kept if set already.
    setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "3", /*overwrite=*/0);
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
    // On this rank's device (the one its tensors live on), not the one c10d would guess from
    // the global rank.
    c10d::BarrierOptions options;
    options.device_ids = {device_index_};
    group_->barrier(options)->wait();
    return OkStatus();
  }
  [[noreturn]] void Abort(const std::string& reason) override {
    std::cerr << "error: rank " << rank_ << ": " << reason << "; aborting" << std::endl;
    group_->abort();
    std::_Exit(kExitRetryableFailure);
  }

 private:
  int64_t rank_, size_, device_index_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> group_;
};
#endif

}  // namespace

Result<c10::intrusive_ptr<c10d::TCPStore>> OpenStore(RendezvousPlace& place,
                                                     const CommunicatorOptions& options) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(place.port);
  store_options.isServer = place.rank == 0;
  store_options.numWorkers = static_cast<std::size_t>(place.size);
  // With a port still to be shared, the server cannot wait for the others in its constructor;
  // the key exchange in MeetOverStore waits for them either way.
  store_options.waitWorkers = place.port != 0;
  store_options.timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(place.addr, store_options);
    if (place.rank == 0) place.port = store->getPort();
    return store;
  } catch (const std::exception& e) {
    return UnavailableError("rendezvous at " + place.addr + ":" + std::to_string(place.port) +
                            " failed: " + e.what());
  }
}

Result<std::unique_ptr<Communicator>> MeetOverStore(c10::intrusive_ptr<c10d::TCPStore> store,
                                                    const RendezvousPlace& place,
                                                    const CommunicatorOptions& options,
                                                    const std::string& launcher) {
  const int64_t rank = place.rank, size = place.size;
  Json::Array peers;
  try {
    const std::string me = HostName("unknown") + " pid " + std::to_string(getpid());
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
    return UnavailableError("rendezvous at " + place.addr + ":" + std::to_string(place.port) +
                            " failed: " + e.what());
  }
  Json seen(Json::Object{{"rank", rank},
                         {"world_size", size},
                         {"local_rank", place.local_rank},
                         {"master_addr", place.addr},
                         {"master_port", place.port},
                         {"launcher", launcher},
                         {"peers", Json(std::move(peers))}});
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES")) {
    seen.as_object()["cuda_visible_devices"] = Json(std::string(visible));
  }
  std::cerr << "rendezvous: " << seen.Dump() << std::endl;
  if (const char* record = std::getenv("MAESTRO_RENDEZVOUS_RECORD")) {
    std::ofstream(std::string(record) + ".rank-" + std::to_string(rank) + ".json")
        << seen.Dump() << "\n";
  }
#ifdef USE_C10D_NCCL
  if (options.cuda && torch::cuda::is_available()) {
    try {
      return std::unique_ptr<Communicator>(
          new NcclCommunicator(store, rank, size, place.local_rank, options));
    } catch (const std::exception& e) {
      return UnavailableError(std::string("NCCL: ") + e.what());
    }
  }
#endif
  return FailedPreconditionError(
      "the " + std::to_string(size) + (size == 1 ? " rank met at " : " ranks met at ") +
      place.addr + ":" + std::to_string(place.port) + ", but " + launcher +
      " data-parallel run trains over NCCL and needs CUDA GPUs" +
      (options.cuda ? ", which this machine lacks" : " (run.device cuda)") +
      "; CPU ranks are started by mpirun (run.device cpu: a trial's slots on one worker, or "
      "inside a Slurm allocation across its nodes)");
}

namespace {

// Where rank 0's node `host` is reached: the name itself when it resolves; else the node's
// NodeAddr as Slurm knows it (clusters whose node names are not in DNS, like the test cluster).
Result<std::string> NodeAddress(const std::string& host) {
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, nullptr, &found) == 0) {
    freeaddrinfo(found);
    return host;
  }
  for (char c : host) {  // a node name goes into a command line below: names only
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return InvalidArgumentError("node name '" + host + "' has characters no node name has");
    }
  }
  const std::string command = "scontrol show node -o " + host + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  if (pipe != nullptr) {
    char buffer[4096];
    while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
    pclose(pipe);
  }
  const size_t at = output.find("NodeAddr=");
  if (at == std::string::npos) {
    return UnavailableError("rank 0's node '" + host +
                            "' does not resolve, and scontrol knows no NodeAddr for it");
  }
  const size_t start = at + 9;
  return output.substr(start, output.find_first_of(" \n", start) - start);
}

}  // namespace

Result<std::unique_ptr<Communicator>> MakeSlurmCommunicator(const SlurmRank& slurm,
                                                            const CommunicatorOptions& options) {
  RendezvousPlace place;
  place.rank = slurm.rank;
  place.size = slurm.world_size;
  place.local_rank = slurm.local_rank;
  place.port = slurm.port;
  MAESTRO_ASSIGN_OR_RETURN(place.addr, NodeAddress(slurm.first_host));
  MAESTRO_ASSIGN_OR_RETURN(auto store, OpenStore(place, options));
  return MeetOverStore(std::move(store), place, options,
                       "an srun-launched (SLURM_PROCID / SLURM_STEP_NUM_TASKS)");
}

Result<std::unique_ptr<Communicator>> MakeEnvCommunicator(const CommunicatorOptions& options) {
  RendezvousPlace place;
  place.rank = EnvInt("RANK", -1);
  place.size = EnvInt("WORLD_SIZE", -1);
  place.local_rank = EnvInt("LOCAL_RANK", 0);
  place.port = EnvInt("MASTER_PORT", -1);
  const char* addr = std::getenv("MASTER_ADDR");
  if (place.rank < 0 || place.size < 1 || place.rank >= place.size || addr == nullptr ||
      place.port <= 0 || place.port > 65535) {
    return InvalidArgumentError(
        "a torchrun-style launch needs RANK (0..WORLD_SIZE-1), WORLD_SIZE, MASTER_ADDR and "
        "MASTER_PORT (1..65535) in the environment");
  }
  place.addr = addr;
  MAESTRO_ASSIGN_OR_RETURN(auto store, OpenStore(place, options));
  return MeetOverStore(std::move(store), place, options, "a torchrun-style (RANK / WORLD_SIZE)");
}

}  // namespace maestro::dist
