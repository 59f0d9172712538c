#include "maestro/dataloader/data_service.h"

#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "maestro/data/v1/data_service.grpc.pb.h"
#include "maestro/dataloader/shards.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/grpc_auth.h"
#include "maestro/shared/grpc_status.h"
#include "maestro/shared/metrics_http.h"
#include "maestro/shared/security.h"

namespace maestro::dataloader {

namespace pb = maestro::data::v1;
using Clock = std::chrono::steady_clock;

namespace {

// One served split with its metric children.
struct Split {
  ServedSplit info;
  std::unique_ptr<ShardStore> store;
  prometheus::Counter* samples = nullptr;
  prometheus::Counter* bytes = nullptr;
};

// Flow-control state of one open stream, shared with Ack.
struct Credit {
  std::string subject;  // the data token's subject that opened it: only it may acknowledge
  std::string client;   // whose share it counts in (the subject, or the peer without tokens)
  std::mutex mutex;
  std::condition_variable acked_changed;
  int64_t acked = 0;
  int64_t sent = 0;  // bytes handed to the stream; acknowledgements beyond it are ignored
};

}  // namespace

class DataServer::Impl final : public pb::DataService::Service {
 public:
  explicit Impl(const DataServerOptions& options)
      : options_(options),
        registry_(std::make_shared<prometheus::Registry>()),
        samples_family_(prometheus::BuildCounter()
                            .Name("maestro_data_samples_served_total")
                            .Help("Records sent to clients (streams and fetches)")
                            .Register(*registry_)),
        bytes_family_(prometheus::BuildCounter()
                          .Name("maestro_data_bytes_served_total")
                          .Help("Record bytes sent to clients")
                          .Register(*registry_)),
        clients_(prometheus::BuildGauge()
                     .Name("maestro_data_clients")
                     .Help("Streams open now")
                     .Register(*registry_)
                     .Add({})),
        streams_(prometheus::BuildCounter()
                     .Name("maestro_data_streams_total")
                     .Help("Streams opened")
                     .Register(*registry_)
                     .Add({})),
        rejected_family_(prometheus::BuildCounter()
                             .Name("maestro_data_requests_rejected_total")
                             .Help("Requests refused or failed, by status code name (normal "
                                   "stream ends and client cancellations are not counted here)")
                             .Register(*registry_)),
        ended_family_(prometheus::BuildCounter()
                          .Name("maestro_data_streams_ended_total")
                          .Help("Streams ended, by outcome: completed, cancelled (by the "
                                "client), idle (no acknowledgement for "
                                "--stream-idle-timeout-s), error")
                          .Register(*registry_)),
        auth_failures_(prometheus::BuildCounter()
                           .Name("maestro_data_auth_failures_total")
                           .Help("Calls refused for their credential, by reason (missing, "
                                 "malformed, bad_signature, expired, wrong_stream)")
                           .Register(*registry_)),
        read_latency_(prometheus::BuildHistogram()
                          .Name("maestro_data_read_latency_seconds")
                          .Help("Time to read one record from its shard")
                          .Register(*registry_)
                          .Add({}, prometheus::Histogram::BucketBoundaries{
                                       1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1})) {}

  Status Open() {
    for (const auto& [name, root] : options_.datasets) {
      if (name.empty()) return InvalidArgumentError("a dataset needs a name (" + root + ")");
      if (!IsDirectory(root))
        return NotFoundError("dataset " + name + ": " + root + " is not a folder");
      MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> entries, ListDirectory(root));
      std::sort(entries.begin(), entries.end());
      int64_t found = 0;
      for (const auto& entry : entries) {
        const std::string dir = root + "/" + entry;
        if (!PathExists(dir + "/manifest.json")) continue;
        const std::string key = name + "/" + entry;
        if (splits_.count(key) > 0) return InvalidArgumentError("dataset " + name + " given twice");
        auto store = OpenShardStore(dir);
        if (!store.ok()) return store.status().WithContext("dataset " + name);
        auto split = std::make_unique<Split>();
        const ShardManifest& manifest = (*store)->manifest();
        split->info = {name,          entry, manifest.name, manifest.content_hash, manifest.storage,
                       manifest.count};
        split->store = std::move(*store);
        split->samples = &samples_family_.Add({{"dataset", name}, {"split", entry}});
        split->bytes = &bytes_family_.Add({{"dataset", name}, {"split", entry}});
        served_.push_back(split->info);
        splits_.emplace(key, std::move(split));
        ++found;
      }
      if (found == 0) {
        return NotFoundError("dataset " + name + ": " + root +
                             " has no split folders with a manifest.json (ingest it first: "
                             "maestro data ingest)");
      }
    }
    if (splits_.empty()) return InvalidArgumentError("no datasets to serve (--dataset DIR)");
    // Every series with a known set of labels exists from the start, at zero
    // (docs/metrics.md).
    for (const char* outcome : {"completed", "cancelled", "idle", "error"}) {
      ended_family_.Add({{"outcome", outcome}});
    }
    for (const char* reason :
         {"missing", "malformed", "bad_signature", "expired", "wrong_stream"}) {
      auth_failures_.Add({{"reason", reason}});
    }
    for (grpc::StatusCode code :
         {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND,
          grpc::StatusCode::OUT_OF_RANGE, grpc::StatusCode::RESOURCE_EXHAUSTED,
          grpc::StatusCode::FAILED_PRECONDITION, grpc::StatusCode::UNAVAILABLE,
          grpc::StatusCode::DEADLINE_EXCEEDED, grpc::StatusCode::INTERNAL,
          grpc::StatusCode::DATA_LOSS, grpc::StatusCode::UNKNOWN}) {
      rejected_family_.Add({{"code", GrpcCodeName(code)}});
    }
    RegisterBuildInfo(*registry_, "maestro-data");
    if (!options_.metrics_listen.empty()) {
      MAESTRO_ASSIGN_OR_RETURN(exposer_, ServeMetrics(options_.metrics_listen, registry_));
    }
    std::shared_ptr<grpc::ServerCredentials> credentials;
    if (!options_.credentials_dir.empty()) {
      const std::string& dir = options_.credentials_dir;
      MAESTRO_ASSIGN_OR_RETURN(
          credentials, MakeServerCredentials(dir + "/" + security::kDataCertFile,
                                             dir + "/" + security::kDataKeyFile));
      auto key = security::ReadSecretFile(dir + "/" + security::kDataTokenKeyFile);
      if (!key.ok()) return key.status().WithContext("the data token key");
      token_key_ = *key;
    } else if (!options_.insecure) {
      return InvalidArgumentError(
          "no credentials: give --credentials DIR (made by `maestro cluster init`), or "
          "--insecure to serve plaintext without authentication on a loopback address");
    } else if (!IsLoopbackAddress(options_.listen)) {
      return InvalidArgumentError("--insecure serves only loopback addresses, not " +
                                  options_.listen + " (anyone on the network could read it)");
    } else {
      credentials = grpc::InsecureServerCredentials();
    }
    grpc::ServerBuilder builder;
    // gRPC sets SO_REUSEPORT by default: a second server on a taken port would share it
    // silently instead of failing.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(64 << 10);  // requests are small: RESOURCE_EXHAUSTED beyond
    // Every stream holds a thread of the synchronous server while it lasts: bounded by
    // max_streams (checked per call) plus room for the unary calls.
    if (options_.max_streams <= 0) return InvalidArgumentError("--max-streams: at least 1");
    if (options_.max_streams_per_client <= 0) {
      options_.max_streams_per_client = std::max<int64_t>(1, options_.max_streams / 4);
    }
    if (!(options_.stream_idle_timeout_s > 0)) {
      return InvalidArgumentError("--stream-idle-timeout-s: must be positive");
    }
    grpc::ResourceQuota quota("maestro-data");
    quota.SetMaxThreads(static_cast<int>(options_.max_streams + 32));
    builder.SetResourceQuota(quota);
    builder.AddListeningPort(options_.listen, credentials, &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return UnavailableError("cannot listen on " + options_.listen +
                              " (address in use or malformed)");
    }
    return OkStatus();
  }

  void Shutdown() {
    std::call_once(shutdown_once_, [this] {
      if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    });
  }

  int port() const { return port_; }
  int metrics_port() const { return MetricsPort(exposer_.get()); }
  const std::vector<ServedSplit>& splits() const { return served_; }

  grpc::Status ListDatasets(grpc::ServerContext* context, const pb::ListDatasetsRequest*,
                            pb::ListDatasetsResponse* response) override {
    if (auto refused = Authenticate(*context, "ListDatasets", nullptr); !refused.ok()) {
      return refused;
    }
    for (const auto& [key, split] : splits_) Describe(*split, response->add_splits());
    return grpc::Status::OK;
  }

  grpc::Status DescribeSplit(grpc::ServerContext* context, const pb::SplitRef* ref,
                             pb::SplitInfo* response) override {
    if (auto refused = Authenticate(*context, "DescribeSplit", nullptr); !refused.ok()) {
      return refused;
    }
    auto split = Find(*ref);
    if (!split.ok()) return Reject(split.status());
    Describe(**split, response);
    return grpc::Status::OK;
  }

  grpc::Status Fetch(grpc::ServerContext* context, const pb::FetchRequest* request,
                     pb::FetchResponse* response) override {
    if (auto refused = Authenticate(*context, "Fetch", nullptr); !refused.ok()) return refused;
    auto found = Find(request->ref());
    if (!found.ok()) return Reject(found.status());
    Split& split = **found;
    if (request->indices_size() > options_.max_fetch_indices) {
      return Reject(InvalidArgumentError(std::to_string(request->indices_size()) +
                                         " indices in one Fetch; at most " +
                                         std::to_string(options_.max_fetch_indices)));
    }
    for (int64_t index : request->indices()) {
      auto value = TimedRead(split, index);
      if (!value.ok()) return Reject(value.status());
      pb::Record* record = response->add_records();
      record->set_index(index);
      Count(split, value->size());
      record->set_value(std::move(*value));
    }
    return grpc::Status::OK;
  }

  grpc::Status Ack(grpc::ServerContext* context, const pb::AckRequest* request,
                   pb::AckResponse*) override {
    std::string subject;
    if (auto refused = Authenticate(*context, "Ack", &subject); !refused.ok()) return refused;
    if (request->bytes() < 0) return Reject(InvalidArgumentError("ack of negative bytes"));
    std::shared_ptr<Credit> credit;
    {
      std::lock_guard<std::mutex> lock(streams_mutex_);
      auto it = open_streams_.find(request->stream_id());
      if (it == open_streams_.end()) {
        // The stream ended on the server (its limit reached, or the client cancelled it): a
        // normal end, not counted as a rejection.
        return ToGrpcStatus(NotFoundError("no open stream " + request->stream_id()));
      }
      credit = it->second;
    }
    if (credit->subject != subject) {
      return Refuse(*context, "Ack", "wrong_stream",
                    grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                 "stream " + request->stream_id() + " was opened by another "
                                 "credential"));
    }
    {
      std::lock_guard<std::mutex> lock(credit->mutex);
      // A client acknowledging more than it was sent gains no credit in advance.
      credit->acked = std::min(credit->acked + request->bytes(), credit->sent);
    }
    credit->acked_changed.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status Stream(grpc::ServerContext* context, const pb::StreamOpen* open,
                      grpc::ServerWriter<pb::RecordChunk>* writer) override {
    std::string subject;
    if (auto refused = Authenticate(*context, "Stream", &subject); !refused.ok()) return refused;
    auto found = Find(open->ref());
    if (!found.ok()) return Reject(found.status());
    Split& split = **found;
    StreamSpec spec;
    spec.seed = open->seed();
    spec.global_batch = open->global_batch();
    spec.rank = open->rank();
    spec.world_size = open->world_size();
    spec.epoch = open->epoch();
    spec.cursor = open->cursor();
    spec.limit = open->limit();
    if (open->max_in_flight_bytes() < 0) {
      return Reject(InvalidArgumentError("max_in_flight_bytes is negative"));
    }
    if (open->stream_id().empty()) return Reject(InvalidArgumentError("stream_id is empty"));
    auto stream = split.store->OpenStream(spec);  // validates the spec
    if (!stream.ok()) return Reject(stream.status());
    const int64_t bound = open->max_in_flight_bytes() > 0 ? open->max_in_flight_bytes()
                                                          : options_.default_in_flight_bytes;
    auto credit = std::make_shared<Credit>();
    credit->subject = subject;
    credit->client = subject.empty() ? PeerHost(context->peer()) : subject;
    {
      std::lock_guard<std::mutex> lock(streams_mutex_);
      if (open_streams_.count(open->stream_id()) > 0) {
        return Reject(InvalidArgumentError("stream_id " + open->stream_id() + " is in use"));
      }
      if (static_cast<int64_t>(open_streams_.size()) >= options_.max_streams) {
        return Reject(ResourceExhaustedError(
            "the data service serves " + std::to_string(options_.max_streams) +
            " streams at once (--max-streams), all in use: retry later"));
      }
      int64_t held = 0;
      for (const auto& [id, other] : open_streams_) held += other->client == credit->client;
      if (held >= options_.max_streams_per_client) {
        return Reject(ResourceExhaustedError(credit->client + " holds " + std::to_string(held) +
                                             " streams, its share of " +
                                             std::to_string(options_.max_streams_per_client) +
                                             " (--max-streams-per-client): retry when one ends"));
      }
      open_streams_.emplace(open->stream_id(), credit);
    }
    clients_.Increment();
    streams_.Increment();
    grpc::Status status = Serve(context, writer, split, **stream, *credit, bound);
    clients_.Decrement();
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(streams_mutex_);
      open_streams_.erase(open->stream_id());
      last = open_streams_.empty();
    }
    // A stream's buffers are freed in the threads that served it; glibc keeps such memory in
    // per-thread arenas. Returning it when the server goes idle keeps a long-running service
    // at its baseline after bursts of clients.
    if (last) malloc_trim(0);
    const char* outcome = status.ok()                                                  ? "completed"
                          : status.error_code() == grpc::StatusCode::CANCELLED         ? "cancelled"
                          : status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? "idle"
                                                                                       : "error";
    ended_family_.Add({{"outcome", outcome}}).Increment();
    if (std::string(outcome) == "error") Rejected(status.error_code());
    return status;
  }

 private:
  // OK when the call carries a valid data token (its subject in `subject`); otherwise the
  // refusal, counted and logged.
  grpc::Status Authenticate(const grpc::ServerContext& context, const char* rpc,
                            std::string* subject) {
    if (token_key_.empty()) return grpc::Status::OK;  // --insecure on loopback
    const std::string token = BearerToken(context);
    if (token.empty()) {
      return Refuse(context, rpc, "missing",
                    grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                 "no data token: a trainer gets one with its assignment "
                                 "(MAESTRO_DATA_TOKEN_FILE); by hand: maestro cluster "
                                 "data-token"));
    }
    auto claims = security::VerifyDataToken(token, token_key_, security::NowMs());
    if (!claims.ok()) {
      const std::string message = claims.status().message();
      const std::string reason = message.rfind("expired", 0) == 0         ? "expired"
                                 : message.rfind("bad signature", 0) == 0 ? "bad_signature"
                                                                          : "malformed";
      return Refuse(context, rpc, reason,
                    grpc::Status(grpc::StatusCode::UNAUTHENTICATED, message));
    }
    if (subject != nullptr) *subject = claims->subject;
    return grpc::Status::OK;
  }

  grpc::Status Refuse(const grpc::ServerContext& context, const char* rpc,
                      const std::string& reason, grpc::Status status) {
    auth_failures_.Add({{"reason", reason}}).Increment();
    refusals_.Write(context, rpc, reason, status.error_message());
    return status;
  }

  // Sends the stream's records while the client's credit allows.
  grpc::Status Serve(grpc::ServerContext* context, grpc::ServerWriter<pb::RecordChunk>* writer,
                     Split& split, RecordStream& stream, Credit& credit, int64_t bound) {
    pb::RecordChunk chunk;
    int64_t chunk_bytes = 0;
    int64_t reserved = 0;  // bytes written or in the chunk
    auto flush = [&]() -> bool {
      if (chunk.records_size() == 0) return true;
      const bool ok = writer->Write(chunk);
      chunk.Clear();
      chunk_bytes = 0;
      return ok;
    };
    StreamedRecord record;
    const auto idle_limit = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options_.stream_idle_timeout_s));
    for (;;) {
      const auto started = Clock::now();
      auto more = stream.Next(record);
      read_latency_.Observe(std::chrono::duration<double>(Clock::now() - started).count());
      if (!more.ok()) return ToGrpcStatus(more.status());
      if (!*more) break;
      const auto size = static_cast<int64_t>(record.value.size());
      // Wait until the record fits the bound (or nothing is outstanding); a client silent for
      // the idle timeout loses its stream (and the thread it holds).
      auto waiting_since = Clock::now();
      int64_t acked_then = -1;
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(credit.mutex);
          const int64_t outstanding = reserved - credit.acked;
          if (outstanding + size <= bound || outstanding <= 0) break;
          if (credit.acked != acked_then) {
            acked_then = credit.acked;
            waiting_since = Clock::now();
          } else if (Clock::now() - waiting_since > idle_limit) {
            return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                "no acknowledgement for " +
                                    std::to_string(options_.stream_idle_timeout_s) +
                                    " s (--stream-idle-timeout-s): stream closed; reopen it "
                                    "from its cursor");
          }
          if (chunk.records_size() == 0) {
            credit.acked_changed.wait_for(lock, std::chrono::milliseconds(100));
          }
        }
        if (!flush()) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        if (context->IsCancelled()) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        }
      }
      pb::Record* out = chunk.add_records();
      out->set_index(record.index);
      out->set_epoch(record.epoch);
      out->set_cursor(record.cursor);
      out->set_value(std::move(record.value));
      reserved += size;
      {
        std::lock_guard<std::mutex> lock(credit.mutex);
        credit.sent = reserved;
      }
      chunk_bytes += size;
      Count(split, static_cast<size_t>(size));
      if (chunk_bytes >= options_.chunk_bytes && !flush()) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
    }
    if (!flush()) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    return grpc::Status::OK;
  }

  Result<Split*> Find(const pb::SplitRef& ref) {
    auto it = splits_.find(ref.dataset() + "/" + ref.split());
    if (it == splits_.end()) {
      std::string known;
      for (const auto& [key, split] : splits_) known += (known.empty() ? "" : ", ") + key;
      return NotFoundError("no dataset '" + ref.dataset() + "' split '" + ref.split() +
                           "' here (serving " + known + ")");
    }
    return it->second.get();
  }

  Result<std::string> TimedRead(Split& split, int64_t index) {
    const auto started = Clock::now();
    auto value = split.store->Read(index);
    read_latency_.Observe(std::chrono::duration<double>(Clock::now() - started).count());
    return value;
  }

  void Count(Split& split, size_t bytes) {
    split.samples->Increment();
    split.bytes->Increment(static_cast<double>(bytes));
  }

  static void Describe(const Split& split, pb::SplitInfo* out) {
    out->mutable_ref()->set_dataset(split.info.dataset);
    out->mutable_ref()->set_split(split.info.split);
    out->set_name(split.info.name);
    out->set_content_hash(split.info.content_hash);
    out->set_count(split.info.count);
    out->set_num_classes(split.store->identity().num_classes);
    out->set_storage(split.info.storage);
    out->set_holds_encoded(split.store->holds_encoded());
  }

  void Rejected(grpc::StatusCode code) {
    rejected_family_.Add({{"code", GrpcCodeName(code)}}).Increment();
  }

  // "ipv4:10.0.0.3:51234" -> "ipv4:10.0.0.3": one client however many connections it opens.
  static std::string PeerHost(const std::string& peer) {
    const size_t colon = peer.rfind(':');
    return colon == std::string::npos || colon < 5 ? peer : peer.substr(0, colon);
  }

  grpc::Status Reject(const Status& status) {
    grpc::Status out = ToGrpcStatus(status);
    Rejected(out.error_code());
    return out;
  }

  DataServerOptions options_;
  std::map<std::string, std::unique_ptr<Split>> splits_;  // by "dataset/split"; fixed at start
  std::vector<ServedSplit> served_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& samples_family_;
  prometheus::Family<prometheus::Counter>& bytes_family_;
  prometheus::Gauge& clients_;
  prometheus::Counter& streams_;
  prometheus::Family<prometheus::Counter>& rejected_family_;
  prometheus::Family<prometheus::Counter>& ended_family_;
  prometheus::Family<prometheus::Counter>& auth_failures_;
  prometheus::Histogram& read_latency_;
  std::string token_key_;  // empty: --insecure
  RefusalLog refusals_{"maestro-data"};
  std::unique_ptr<prometheus::Exposer> exposer_;

  std::mutex streams_mutex_;
  std::map<std::string, std::shared_ptr<Credit>> open_streams_;

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::once_flag shutdown_once_;
};

DataServer::DataServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DataServer::~DataServer() { impl_->Shutdown(); }

Result<std::unique_ptr<DataServer>> DataServer::Start(const DataServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  MAESTRO_RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<DataServer>(new DataServer(std::move(impl)));
}

int DataServer::port() const { return impl_->port(); }
int DataServer::metrics_port() const { return impl_->metrics_port(); }
const std::vector<ServedSplit>& DataServer::splits() const { return impl_->splits(); }
void DataServer::Shutdown() { impl_->Shutdown(); }

}  // namespace maestro::dataloader
