#include "maestro/dataloader/data_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include "maestro/data/v1/data_service.grpc.pb.h"
#include "maestro/shared/grpc_auth.h"
#include "maestro/shared/grpc_status.h"
#include "maestro/shared/ids.h"

namespace maestro::dataloader {

namespace pb = maestro::data::v1;

namespace {

class RemoteStream : public RecordStream {
 public:
  RemoteStream(pb::DataService::Stub& stub, const pb::StreamOpen& open, int64_t epoch_length,
               int64_t ack_threshold, std::shared_ptr<TokenFile> token)
      : stub_(stub),
        open_(open),
        limit_(open.limit()),
        epoch_length_(epoch_length),
        stream_id_(open.stream_id()),
        ack_threshold_(ack_threshold),
        token_(std::move(token)) {
    Start();
  }

  ~RemoteStream() override {
    if (finished_) return;
    context_->TryCancel();
    pb::RecordChunk drain;
    while (reader_->Read(&drain)) {
    }
    (void)reader_->Finish();
  }

  Result<bool> Next(StreamedRecord& out) override {
    if (!status_.ok()) return status_;
    if (next_ == chunk_.records_size()) {
      if (finished_) return false;
      // Acknowledge everything consumed before waiting, so the server is never held back by
      // bytes this client has already taken.
      MAESTRO_RETURN_IF_ERROR(SendAck());
      chunk_.Clear();
      next_ = 0;
      while (!reader_->Read(&chunk_)) {
        grpc::Status status = reader_->Finish();
        finished_ = true;
        if (status.ok()) return false;
        // A busy service refuses the stream before its first record: wait and open it again
        // (the records and their order do not depend on when the stream starts).
        if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && !received_ &&
            WaitForService(status)) {
          Start();
          continue;
        }
        // The service closed a stream this client left idle (--stream-idle-timeout-s): open it
        // again right after the last record taken; the records that follow are the same.
        if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && received_ &&
            ResumeAfterIdle()) {
          continue;
        }
        status_ = FromGrpcStatus(status, "data stream");
        return status_;
      }
      received_ = true;
    }
    pb::Record* record = chunk_.mutable_records(next_++);
    out.epoch = record->epoch();
    out.cursor = record->cursor();
    out.index = record->index();
    out.value = std::move(*record->mutable_value());
    last_epoch_ = out.epoch;
    last_cursor_ = out.cursor;
    ++delivered_;
    unacked_ += static_cast<int64_t>(out.value.size());
    if (unacked_ >= ack_threshold_) MAESTRO_RETURN_IF_ERROR(SendAck());
    return true;
  }

  void Cancel() override { context_->TryCancel(); }

 private:
  // Reopens the stream after the last record delivered; false when nothing is left to deliver.
  bool ResumeAfterIdle() {
    if (limit_ > 0 && delivered_ >= limit_) return false;
    int64_t epoch = last_epoch_, cursor = last_cursor_ + 1;
    if (cursor >= epoch_length_) {
      cursor = 0;
      ++epoch;
    }
    open_.set_epoch(epoch);
    open_.set_cursor(cursor);
    if (limit_ > 0) open_.set_limit(limit_ - delivered_);
    unacked_ = 0;  // the closed stream's credit ended with it
    Start();
    return true;
  }

  void Start() {
    context_ = std::make_unique<grpc::ClientContext>();
    finished_ = false;
    status_ = token_->Attach(*context_);
    reader_ = stub_.Stream(context_.get(), open_);
  }

  // Backoff from 0.2 s to 10 s with jitter, for at most kMaxWait in all; false when that is
  // spent (the stream's error is then the refusal).
  bool WaitForService(const grpc::Status& status) {
    constexpr auto kMaxWait = std::chrono::minutes(30);
    const auto now = std::chrono::steady_clock::now();
    if (waits_ == 0) {
      first_refusal_ = now;
      std::fprintf(stderr, "data service busy (%s): waiting to open stream %s\n",
                   status.error_message().c_str(), stream_id_.c_str());
    }
    if (now - first_refusal_ > kMaxWait) return false;
    const double base = std::min(10.0, 0.2 * static_cast<double>(1 << std::min(waits_, 6)));
    // Spread over [0.5, 1.5) of the base, differently per stream, so refused ranks do not
    // come back all at once.
    const size_t spread =
        (std::hash<std::string>{}(stream_id_) + static_cast<size_t>(waits_) * 7919) % 1000;
    const double jitter = 0.5 + static_cast<double>(spread) / 1000.0;
    ++waits_;
    std::this_thread::sleep_for(std::chrono::duration<double>(base * jitter));
    return true;
  }

  Status SendAck() {
    if (unacked_ == 0 || finished_) return OkStatus();
    pb::AckRequest request;
    request.set_stream_id(stream_id_);
    request.set_bytes(unacked_);
    pb::AckResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (Status attached = token_->Attach(context); !attached.ok()) {
      status_ = attached;
      return status_;
    }
    grpc::Status status = stub_.Ack(&context, request, &response);
    // NOT_FOUND: the stream ended on the server (limit reached); the records still arrive.
    if (!status.ok() && status.error_code() != grpc::StatusCode::NOT_FOUND) {
      status_ = FromGrpcStatus(status, "acknowledging stream records");
      return status_;
    }
    unacked_ = 0;
    return OkStatus();
  }

  pb::DataService::Stub& stub_;
  pb::StreamOpen open_;
  const int64_t limit_;         // records the caller asked for (0: unbounded)
  const int64_t epoch_length_;  // records of one epoch of this rank's sequence
  int64_t last_epoch_ = 0, last_cursor_ = 0, delivered_ = 0;
  std::string stream_id_;
  int64_t ack_threshold_;
  std::unique_ptr<grpc::ClientContext> context_;
  bool received_ = false;  // a record came: the stream was served
  int waits_ = 0;
  std::chrono::steady_clock::time_point first_refusal_;
  std::unique_ptr<grpc::ClientReader<pb::RecordChunk>> reader_;
  pb::RecordChunk chunk_;
  int next_ = 0;
  int64_t unacked_ = 0;
  bool finished_ = false;
  std::shared_ptr<TokenFile> token_;
  Status status_;
};

class RemoteStore : public RecordStore {
 public:
  RemoteStore(std::shared_ptr<grpc::Channel> channel, pb::SplitInfo info, DataClientOptions options,
              std::shared_ptr<TokenFile> token)
      : token_(std::move(token)),
        channel_(std::move(channel)),
        stub_(pb::DataService::NewStub(channel_)),
        info_(std::move(info)),
        options_(options) {
    identity_ = {info_.name(), info_.content_hash(), info_.count(), info_.num_classes()};
  }

  const DatasetIdentity& identity() const override { return identity_; }
  bool holds_encoded() const override { return info_.holds_encoded(); }

  Result<std::string> Read(int64_t index) const override {
    pb::FetchRequest request;
    *request.mutable_ref() = info_.ref();
    request.add_indices(index);
    pb::FetchResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    MAESTRO_RETURN_IF_ERROR(token_->Attach(context));
    MAESTRO_RETURN_IF_ERROR(FromGrpcStatus(stub_->Fetch(&context, request, &response),
                                           "fetching record " + std::to_string(index)));
    if (response.records_size() != 1) {
      return InternalError("the data service answered " + std::to_string(response.records_size()) +
                           " records for one index");
    }
    return std::move(*response.mutable_records(0)->mutable_value());
  }

  Result<std::unique_ptr<RecordStream>> OpenStream(const StreamSpec& spec) const override {
    MAESTRO_RETURN_IF_ERROR(spec.Validate(identity_.size));
    pb::StreamOpen open;
    *open.mutable_ref() = info_.ref();
    open.set_seed(spec.seed);
    open.set_global_batch(spec.global_batch);
    open.set_rank(spec.rank);
    open.set_world_size(spec.world_size);
    open.set_epoch(spec.epoch);
    open.set_cursor(spec.cursor);
    open.set_limit(spec.limit);
    open.set_max_in_flight_bytes(options_.max_in_flight_bytes);
    open.set_stream_id(RandomHexId());
    // Acknowledge in quarters of the bound (of the server's 8 MiB default when unset).
    const int64_t bound =
        options_.max_in_flight_bytes > 0 ? options_.max_in_flight_bytes : int64_t{8} << 20;
    return std::unique_ptr<RecordStream>(new RemoteStream(
        *stub_, open, spec.EpochLength(identity_.size), std::max<int64_t>(1, bound / 4), token_));
  }

 private:
  std::shared_ptr<TokenFile> token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::DataService::Stub> stub_;
  pb::SplitInfo info_;
  DataClientOptions options_;
  DatasetIdentity identity_;
};

// The channel, and the token file its calls carry (read again when the worker renews it).
Result<std::shared_ptr<grpc::Channel>> Connect(const std::string& address,
                                               const DataClientOptions& options,
                                               std::shared_ptr<TokenFile>& token) {
  ClientAuth auth = ClientAuthFromEnvironment("MAESTRO_DATA_TOKEN_FILE");
  if (!options.ca_file.empty()) auth.ca_file = options.ca_file;
  if (!options.token_file.empty()) auth.token_file = options.token_file;
  if (!options.token.empty()) {
    auth.token = options.token;
    auth.token_file.clear();
  }
  if (!auth.token_file.empty() && auth.ca_file.empty()) {
    return InvalidArgumentError("a data token without the cluster CA (MAESTRO_CA): a token is "
                                "never sent over plaintext");
  }
  token = std::make_shared<TokenFile>(auth.token_file);
  if (!auth.token_file.empty()) {
    MAESTRO_RETURN_IF_ERROR(token->Current().status().WithContext("the data token file"));
  }
  auth.token_file.clear();
  MAESTRO_ASSIGN_OR_RETURN(auto credentials, MakeChannelCredentials(auth, address));
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // a chunk holds at least one record, however large
  auto channel = grpc::CreateCustomChannel(address, credentials, arguments);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(options.connect_timeout_ms))) {
    const std::string why = ExplainTlsFailure(address, auth);
    return UnavailableError("cannot reach the data service at " + address + " (waited " +
                            std::to_string(options.connect_timeout_ms) + " ms" +
                            (why.empty() ? "" : "; " + why) + ")");
  }
  return channel;
}

}  // namespace

Result<std::unique_ptr<RecordStore>> ConnectDataService(const std::string& address,
                                                        const std::string& dataset,
                                                        const std::string& split,
                                                        const DataClientOptions& options) {
  std::shared_ptr<TokenFile> token;
  MAESTRO_ASSIGN_OR_RETURN(auto channel, Connect(address, options, token));
  auto stub = pb::DataService::NewStub(channel);
  pb::SplitRef ref;
  ref.set_dataset(dataset);
  ref.set_split(split);
  pb::SplitInfo info;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  MAESTRO_RETURN_IF_ERROR(token->Attach(context));
  MAESTRO_RETURN_IF_ERROR(FromGrpcStatus(stub->DescribeSplit(&context, ref, &info), address));
  return std::unique_ptr<RecordStore>(
      new RemoteStore(std::move(channel), std::move(info), options, std::move(token)));
}

Result<std::vector<std::string>> ListServedSplits(const std::string& address,
                                                  const DataClientOptions& options) {
  std::shared_ptr<TokenFile> token;
  MAESTRO_ASSIGN_OR_RETURN(auto channel, Connect(address, options, token));
  auto stub = pb::DataService::NewStub(channel);
  pb::ListDatasetsResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  MAESTRO_RETURN_IF_ERROR(token->Attach(context));
  MAESTRO_RETURN_IF_ERROR(
      FromGrpcStatus(stub->ListDatasets(&context, pb::ListDatasetsRequest(), &response), address));
  std::vector<std::string> lines;
  for (const auto& split : response.splits()) {
    lines.push_back(split.ref().dataset() + " " + split.ref().split() + " " + split.name() + " " +
                    split.content_hash() + " " + std::to_string(split.count()));
  }
  return lines;
}

}  // namespace maestro::dataloader
