// The data service on real parts: shards on disk, a real gRPC server on 127.0.0.1 and its
// /metrics endpoint over HTTP. Streams equal the local reader record for record; every rank's
// stream together covers each index once per epoch; a stream resumed from a cursor reproduces
// the uninterrupted one; bad requests get INVALID_ARGUMENT / NOT_FOUND with a message; a
// stalled client never has more than its bound in flight; 8 concurrent clients get every byte.
#include "maestro/dataloader/data_service.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <thread>

#include "maestro/data/v1/data_service.grpc.pb.h"
#include "maestro/dataloader/data_client.h"
#include "maestro/dataloader/shards.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/security.h"
#include "maestro/shared/rng.h"

namespace maestro::dataloader {
namespace {

namespace pb = maestro::data::v1;

// Grayscale images of varied sizes (16 to 4096 pixel bytes), so records differ in length.
class VariedDataset : public Dataset {
 public:
  explicit VariedDataset(int64_t n) {
    identity_ = {"varied/train", "", n, 7};
    for (int64_t i = 0; i < n; ++i) {
      CounterRng rng(HashKey({static_cast<uint64_t>(i), 99}));
      RawSample s;
      s.index = i;
      s.label = i % 7;
      s.height = 4 + static_cast<int64_t>(rng.Below(61));
      s.width = 4 + static_cast<int64_t>(rng.Below(61));
      s.channels = 1;
      s.pixels.resize(static_cast<size_t>(s.height * s.width));
      for (auto& p : s.pixels) p = static_cast<uint8_t>(rng.Below(256));
      samples_.push_back(std::move(s));
    }
  }
  int64_t size() const override { return identity_.size; }
  const DatasetIdentity& identity() const override { return identity_; }
  Result<RawSample> Get(int64_t index) const override {
    return samples_[static_cast<size_t>(index)];
  }

 private:
  DatasetIdentity identity_;
  std::vector<RawSample> samples_;
};

// GET http://127.0.0.1:port/metrics, the body.
std::string HttpGetMetrics(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)::write(fd, request.data(), request.size());
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of a metric line `name{labels} value` (the first that starts with `prefix`).
double MetricValue(const std::string& body, const std::string& prefix) {
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(line.find_last_of(' ') + 1));
  }
  return -1;
}

std::vector<StreamedRecord> ReadAll(RecordStream& stream) {
  std::vector<StreamedRecord> out;
  StreamedRecord record;
  for (;;) {
    auto more = stream.Next(record);
    EXPECT_TRUE(more.ok()) << more.status().ToString();
    if (!more.ok() || !*more) return out;
    out.push_back(record);
  }
}

void ExpectSameRecords(const std::vector<StreamedRecord>& a, const std::vector<StreamedRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].epoch, b[i].epoch) << i;
    ASSERT_EQ(a[i].cursor, b[i].cursor) << i;
    ASSERT_EQ(a[i].index, b[i].index) << i;
    ASSERT_EQ(a[i].value, b[i].value) << i;
  }
}

class DataServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string("/tmp/maestro_data_service_" + std::to_string(::getpid()));
    ASSERT_TRUE(RemoveTree(*root_).ok());
    VariedDataset source(1000);
    IngestOptions options;
    options.out_dir = *root_ + "/varied/train";
    options.name = "varied/train";
    options.source = Json(Json::Object{{"format", "test"}});
    options.shards = 3;
    ASSERT_TRUE(IngestDataset(source, options).ok());
    auto local = OpenShardStore(options.out_dir);
    ASSERT_TRUE(local.ok()) << local.status().ToString();
    local_ = local->release();
    DataServerOptions server_options;
    server_options.datasets = {{"varied", *root_ + "/varied"}};
    server_options.metrics_listen = "127.0.0.1:0";
    server_options.chunk_bytes = 16 << 10;
    security::ClusterInit cluster;
    cluster.dir = *root_ + "/cluster";
    ASSERT_TRUE(security::InitCluster(cluster).ok());
    server_options.credentials_dir = cluster.dir;
    // Clients find the CA and their data token where a worker puts them for a trainer.
    ASSERT_TRUE(security::WriteSecretFile(*root_ + "/test.data-token", Token(3600000) + "\n").ok());
    setenv("MAESTRO_CA", (cluster.dir + "/ca.crt").c_str(), 1);
    setenv("MAESTRO_DATA_TOKEN_FILE", (*root_ + "/test.data-token").c_str(), 1);
    auto server = DataServer::Start(server_options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete local_;
    (void)RemoveTree(*root_);
    delete root_;
  }

  static std::string Address() { return "127.0.0.1:" + std::to_string(server_->port()); }

  // A data token signed with the cluster's key, valid for `lifetime_ms` from now (negative:
  // expired), named `subject`.
  static std::string Token(int64_t lifetime_ms, const std::string& subject = "test",
                           const std::string& key_file = "") {
    auto key = security::ReadSecretFile(key_file.empty() ? *root_ + "/cluster/data-token.key"
                                                         : key_file);
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    security::DataClaims claims;
    claims.subject = subject;
    claims.expires_ms = security::NowMs() + lifetime_ms;
    return security::SignDataToken(claims, key.ok() ? *key : "");
  }

  // A TLS channel to the server; every call carries `token` (none when empty).
  static std::shared_ptr<grpc::Channel> SecureChannel(const std::string& token = Token(600000)) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = *ReadFile(*root_ + "/cluster/ca.crt");
    auto credentials = grpc::SslCredentials(tls);
    if (!token.empty()) {
      credentials = grpc::CompositeChannelCredentials(credentials,
                                                      grpc::AccessTokenCredentials(token));
    }
    return grpc::CreateChannel(Address(), credentials);
  }

  static std::unique_ptr<RecordStore> Connect(int64_t max_in_flight_bytes = 0) {
    DataClientOptions options;
    options.max_in_flight_bytes = max_in_flight_bytes;
    auto store = ConnectDataService(Address(), "varied", "train", options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static std::vector<StreamedRecord> Stream(const RecordStore& store, const StreamSpec& spec) {
    auto stream = store.OpenStream(spec);
    EXPECT_TRUE(stream.ok()) << stream.status().ToString();
    return stream.ok() ? ReadAll(**stream) : std::vector<StreamedRecord>{};
  }

  static std::string* root_;
  static ShardStore* local_;
  static DataServer* server_;
};

std::string* DataServiceTest::root_ = nullptr;
ShardStore* DataServiceTest::local_ = nullptr;
DataServer* DataServiceTest::server_ = nullptr;

TEST_F(DataServiceTest, DescribesWhatItServes) {
  auto remote = Connect();
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(remote->identity().name, "varied/train");
  EXPECT_EQ(remote->identity().content_hash, local_->identity().content_hash);
  EXPECT_EQ(remote->identity().size, 1000);
  EXPECT_EQ(remote->identity().num_classes, 7);
  for (int64_t index : {0, 1, 500, 999}) EXPECT_EQ(*remote->Read(index), *local_->Read(index));
  auto lines = ListServedSplits(Address());
  ASSERT_TRUE(lines.ok());
  ASSERT_EQ(lines->size(), 1u);
  EXPECT_EQ((*lines)[0].rfind("varied train varied/train ", 0), 0u) << (*lines)[0];
}

TEST_F(DataServiceTest, EveryRankStreamsTheLocalReadersRecordsAndTogetherEachIndexOncePerEpoch) {
  auto remote = Connect(20000);  // a small bound: many acknowledgement round trips
  ASSERT_NE(remote, nullptr);
  for (int64_t global_batch : {40, 48}) {  // 1000 = 25 x 40; 48 leaves 40 records out
    for (int64_t world_size : {1, 4}) {
      const int64_t steps = 1000 / global_batch;
      std::vector<std::map<int64_t, int>> seen(2);  // per epoch: index -> times
      for (int64_t rank = 0; rank < world_size; ++rank) {
        StreamSpec spec{7, global_batch, rank, world_size, 0, 0, 0};
        spec.limit = 2 * spec.EpochLength(1000);
        auto served = Stream(*remote, spec);
        auto local = Stream(*local_, spec);
        ASSERT_EQ(served.size(), static_cast<size_t>(2 * steps * global_batch / world_size));
        ExpectSameRecords(served, local);
        for (const auto& record : served) ++seen[static_cast<size_t>(record.epoch)][record.index];
      }
      for (const auto& epoch : seen) {
        EXPECT_EQ(epoch.size(), static_cast<size_t>(steps * global_batch));
        for (const auto& [index, times] : epoch) ASSERT_EQ(times, 1) << index;
      }
    }
  }
}

TEST_F(DataServiceTest, AStreamResumedFromACursorReproducesTheUninterruptedOne) {
  auto remote = Connect();
  ASSERT_NE(remote, nullptr);
  StreamSpec spec{3, 50, 1, 2, 0, 0, 0};
  const int64_t length = spec.EpochLength(1000);  // 500 per epoch for this rank
  spec.limit = 3 * length;
  auto whole = Stream(*remote, spec);
  ASSERT_EQ(whole.size(), static_cast<size_t>(3 * length));
  EXPECT_NE(whole[0].index * 1000 + whole[1].index,
            whole[static_cast<size_t>(length)].index * 1000 +
                whole[static_cast<size_t>(length) + 1].index)
      << "each epoch has its own order";
  for (int64_t position : {int64_t{1}, int64_t{137}, length - 1, length, 2 * length + 7}) {
    StreamSpec resumed = spec;
    resumed.epoch = position / length;
    resumed.cursor = position % length;
    resumed.limit = 3 * length - position;
    auto rest = Stream(*remote, resumed);
    ExpectSameRecords(rest, std::vector<StreamedRecord>(whole.begin() + position, whole.end()));
  }
}

TEST_F(DataServiceTest, BadRequestsGetCanonicalErrorsWithAMessage) {
  auto channel = SecureChannel();
  auto stub = pb::DataService::NewStub(channel);
  auto open_with = [&](auto edit) {
    pb::StreamOpen open;
    open.mutable_ref()->set_dataset("varied");
    open.mutable_ref()->set_split("train");
    open.set_global_batch(40);
    open.set_world_size(4);
    open.set_stream_id("bad-request-test");
    edit(open);
    grpc::ClientContext context;
    auto reader = stub->Stream(&context, open);
    pb::RecordChunk chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish();
  };
  struct Case {
    const char* what;
    std::function<void(pb::StreamOpen&)> edit;
    grpc::StatusCode code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"unknown dataset", [](pb::StreamOpen& o) { o.mutable_ref()->set_dataset("nope"); },
       grpc::StatusCode::NOT_FOUND, "no dataset 'nope'"},
      {"unknown split", [](pb::StreamOpen& o) { o.mutable_ref()->set_split("val"); },
       grpc::StatusCode::NOT_FOUND, "split 'val'"},
      {"rank >= world_size", [](pb::StreamOpen& o) { o.set_rank(4); },
       grpc::StatusCode::INVALID_ARGUMENT, "rank 4 outside [0, world_size 4)"},
      {"negative cursor", [](pb::StreamOpen& o) { o.set_cursor(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "cursor -1"},
      {"cursor past the epoch", [](pb::StreamOpen& o) { o.set_cursor(250); },
       grpc::StatusCode::INVALID_ARGUMENT, "cursor 250"},
      {"negative epoch", [](pb::StreamOpen& o) { o.set_epoch(-2); },
       grpc::StatusCode::INVALID_ARGUMENT, "epoch -2"},
      {"indivisible batch", [](pb::StreamOpen& o) { o.set_world_size(3); },
       grpc::StatusCode::INVALID_ARGUMENT, "does not divide"},
      {"batch over size", [](pb::StreamOpen& o) { o.set_global_batch(2000); },
       grpc::StatusCode::INVALID_ARGUMENT, "global_batch 2000"},
      {"zero world", [](pb::StreamOpen& o) { o.set_world_size(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "world_size 0"},
      {"negative bound", [](pb::StreamOpen& o) { o.set_max_in_flight_bytes(-5); },
       grpc::StatusCode::INVALID_ARGUMENT, "max_in_flight_bytes"},
      {"no stream id", [](pb::StreamOpen& o) { o.set_stream_id(""); },
       grpc::StatusCode::INVALID_ARGUMENT, "stream_id"},
  };
  for (const auto& c : cases) {
    grpc::Status status = open_with(c.edit);
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.message), std::string::npos)
        << c.what << ": " << status.error_message();
  }
  {
    pb::FetchRequest request;
    request.mutable_ref()->set_dataset("varied");
    request.mutable_ref()->set_split("train");
    request.add_indices(1000);
    pb::FetchResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->Fetch(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("index 1000 outside"), std::string::npos);
  }
  {
    pb::AckRequest request;
    request.set_stream_id("no-such-stream");
    request.set_bytes(10);
    pb::AckResponse response;
    grpc::ClientContext context;
    EXPECT_EQ(stub->Ack(&context, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  // Still serving.
  auto remote = Connect();
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(Stream(*remote, StreamSpec{0, 40, 0, 1, 0, 0, 100}).size(), 100u);
}

TEST_F(DataServiceTest, AStalledClientNeverHasMoreThanItsBoundInFlight) {
  auto channel = SecureChannel();
  auto stub = pb::DataService::NewStub(channel);
  const std::string metric = "maestro_data_bytes_served_total{dataset=\"varied\",split=\"train\"}";
  const double before = MetricValue(HttpGetMetrics(server_->metrics_port()), metric);
  ASSERT_GE(before, 0) << HttpGetMetrics(server_->metrics_port());
  constexpr int64_t kBound = 30000;  // bytes; records are 32 to 4,112 bytes
  pb::StreamOpen open;
  open.mutable_ref()->set_dataset("varied");
  open.mutable_ref()->set_split("train");
  open.set_global_batch(40);
  open.set_world_size(1);
  open.set_max_in_flight_bytes(kBound);
  open.set_stream_id("stalled-client");
  grpc::ClientContext context;
  auto reader = stub->Stream(&context, open);
  pb::RecordChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));  // then stall: read nothing more, acknowledge nothing
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const double stalled = MetricValue(HttpGetMetrics(server_->metrics_port()), metric) - before;
  EXPECT_GT(stalled, kBound / 2);
  EXPECT_LE(stalled, kBound);
  // Acknowledging lets at most one bound more through, even when the client acknowledges ten
  // times what it received (no credit in advance).
  pb::AckRequest ack;
  ack.set_stream_id("stalled-client");
  ack.set_bytes(static_cast<int64_t>(stalled) + 10 * kBound);
  pb::AckResponse response;
  grpc::ClientContext ack_context;
  ASSERT_TRUE(stub->Ack(&ack_context, ack, &response).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double after = MetricValue(HttpGetMetrics(server_->metrics_port()), metric) - before;
  EXPECT_GT(after, stalled);
  EXPECT_LE(after, stalled + kBound);
  EXPECT_EQ(MetricValue(HttpGetMetrics(server_->metrics_port()), "maestro_data_clients"), 1);
  context.TryCancel();
  while (reader->Read(&chunk)) {
  }
  (void)reader->Finish();
  // The server notices the cancelled stream within its 100 ms poll.
  for (int i = 0;
       i < 50 && MetricValue(HttpGetMetrics(server_->metrics_port()), "maestro_data_clients") != 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(MetricValue(HttpGetMetrics(server_->metrics_port()), "maestro_data_clients"), 0);
}

TEST_F(DataServiceTest, EightConcurrentClientsGetEveryByte) {
  constexpr int kClients = 8;
  std::vector<std::vector<StreamedRecord>> served(kClients);
  std::vector<std::thread> threads;
  auto spec_of = [](int client) {
    // Four ranks of one seed and four other seeds: overlapping and disjoint reads at once.
    StreamSpec spec{client < 4 ? uint64_t{11} : static_cast<uint64_t>(100 + client),
                    40,
                    client < 4 ? client : 0,
                    client < 4 ? 4 : 1,
                    0,
                    0,
                    0};
    spec.limit = 2 * spec.EpochLength(1000) + 13;
    return spec;
  };
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto remote = Connect(c % 2 == 0 ? 0 : 50000);
      if (remote) served[static_cast<size_t>(c)] = Stream(*remote, spec_of(c));
    });
  }
  for (auto& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) {
    SCOPED_TRACE("client " + std::to_string(c));
    ExpectSameRecords(served[static_cast<size_t>(c)], Stream(*local_, spec_of(c)));
  }
  const std::string metrics = HttpGetMetrics(server_->metrics_port());
  EXPECT_NE(metrics.find("maestro_data_read_latency_seconds_count"), std::string::npos);
  EXPECT_GE(MetricValue(metrics, "maestro_data_streams_total"), 8);
}

}  // namespace
}  // namespace maestro::dataloader

namespace maestro::dataloader {
namespace {

// Every call needs a data token signed with the cluster's key, valid now; a stream is
// acknowledged only by the credential that opened it; refusals are counted by reason.
TEST_F(DataServiceTest, OnlyValidDataTokensAreServed) {
  pb::SplitRef ref;
  ref.set_dataset("varied");
  ref.set_split("train");
  auto describe = [&](std::shared_ptr<grpc::Channel> channel) {
    auto stub = pb::DataService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pb::SplitInfo info;
    return stub->DescribeSplit(&context, ref, &info);
  };
  security::ClusterInit other;
  other.dir = *root_ + "/other-cluster";
  (void)RemoveTree(other.dir);
  ASSERT_TRUE(security::InitCluster(other).ok());
  const std::string forged = Token(600000, "forger", other.dir + "/data-token.key");
  std::string tampered = Token(600000);
  tampered[10] = tampered[10] == 'a' ? 'b' : 'a';
  EXPECT_TRUE(describe(SecureChannel()).ok());
  EXPECT_EQ(describe(SecureChannel("")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(describe(SecureChannel("mdt1.junk")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(describe(SecureChannel(forged)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(describe(SecureChannel(tampered)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(describe(SecureChannel(Token(-1000))).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(describe(grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials()))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // Another credential cannot acknowledge (steer) a stream it did not open.
  auto owner = pb::DataService::NewStub(SecureChannel(Token(600000, "trial-1/attempt-1")));
  pb::StreamOpen open;
  *open.mutable_ref() = ref;
  open.set_global_batch(40);
  open.set_world_size(1);
  open.set_max_in_flight_bytes(1);
  open.set_stream_id("owned-stream");
  grpc::ClientContext stream_context;
  auto reader = owner->Stream(&stream_context, open);
  pb::RecordChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  auto intruder = pb::DataService::NewStub(SecureChannel(Token(600000, "trial-2/attempt-1")));
  pb::AckRequest ack;
  ack.set_stream_id("owned-stream");
  ack.set_bytes(1 << 20);
  pb::AckResponse acked;
  grpc::ClientContext ack_context;
  EXPECT_EQ(intruder->Ack(&ack_context, ack, &acked).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  stream_context.TryCancel();
  while (reader->Read(&chunk)) {
  }
  (void)reader->Finish();

  const std::string metrics = HttpGetMetrics(server_->metrics_port());
  for (const char* reason : {"missing", "malformed", "bad_signature", "expired", "wrong_stream"}) {
    EXPECT_GE(MetricValue(metrics, std::string("maestro_data_auth_failures_total{reason=\"") +
                                       reason + "\"}"),
              1)
        << reason << "\n"
        << metrics;
  }
}

// Without credentials the server starts only when told to be insecure, and only on loopback.
TEST_F(DataServiceTest, NoCredentialsNeedInsecureOnLoopback) {
  DataServerOptions options;
  options.datasets = {{"varied", *root_ + "/varied"}};
  auto refused = DataServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--credentials"), std::string::npos);
  options.insecure = true;
  options.listen = "0.0.0.0:0";
  refused = DataServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("loopback"), std::string::npos);
  options.listen = "127.0.0.1:0";
  auto insecure = DataServer::Start(options);
  ASSERT_TRUE(insecure.ok()) << insecure.status().ToString();
  // It serves plaintext callers, without a token.
  auto stub = pb::DataService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*insecure)->port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  pb::ListDatasetsResponse listed;
  EXPECT_TRUE(stub->ListDatasets(&context, pb::ListDatasetsRequest(), &listed).ok());
  EXPECT_EQ(listed.splits_size(), 1);
  // A client without the cluster CA speaks plaintext to loopback only (nothing is sent).
  DataClientOptions plaintext;
  plaintext.ca_file = "";
  const char* ca = std::getenv("MAESTRO_CA");
  const std::string saved_ca = ca != nullptr ? ca : "";
  const char* token = std::getenv("MAESTRO_DATA_TOKEN_FILE");
  const std::string saved_token = token != nullptr ? token : "";
  unsetenv("MAESTRO_CA");
  unsetenv("MAESTRO_DATA_TOKEN_FILE");
  auto remote = ListServedSplits("example.invalid:7070", plaintext);
  setenv("MAESTRO_CA", saved_ca.c_str(), 1);
  setenv("MAESTRO_DATA_TOKEN_FILE", saved_token.c_str(), 1);
  ASSERT_FALSE(remote.ok());
  EXPECT_EQ(remote.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(remote.status().message().find("loopback"), std::string::npos)
      << remote.status().ToString();
}

// Threads of this process now (the in-process server's included).
int64_t ThreadCount() {
  auto tasks = ListDirectory("/proc/self/task");
  return tasks.ok() ? static_cast<int64_t>(tasks->size()) : -1;
}

// Streams are served from a bounded pool with a per-client share; idle streams end; a client
// refused for a busy service waits and is served; the metrics tell completions, cancellations,
// idle ends and rejections apart, with code names.
TEST_F(DataServiceTest, StreamsComeFromABoundedPoolWithAShareEachAndIdleOnesEnd) {
  DataServerOptions options;
  options.datasets = {{"varied", *root_ + "/varied"}};
  options.metrics_listen = "127.0.0.1:0";
  options.credentials_dir = *root_ + "/cluster";
  options.chunk_bytes = 4 << 10;
  options.max_streams = 8;
  options.max_streams_per_client = 3;
  // Long enough for the 300 refused opens below to finish well inside it on a loaded machine.
  options.stream_idle_timeout_s = 4;
  auto started = DataServer::Start(options);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<DataServer> server = std::move(*started);
  const std::string address = "127.0.0.1:" + std::to_string(server->port());
  auto channel_for = [&](const std::string& subject) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = *ReadFile(*root_ + "/cluster/ca.crt");
    return grpc::CreateChannel(address, grpc::CompositeChannelCredentials(
                                            grpc::SslCredentials(tls),
                                            grpc::AccessTokenCredentials(Token(600000, subject))));
  };
  // A stalled stream: its first chunk read, nothing acknowledged.
  struct Held {
    std::unique_ptr<pb::DataService::Stub> stub;
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<pb::RecordChunk>> reader;
    bool served = false;
  };
  int next_id = 0;
  auto open = [&](const std::string& subject) {
    Held held;
    held.stub = pb::DataService::NewStub(channel_for(subject));
    held.context = std::make_unique<grpc::ClientContext>();
    pb::StreamOpen request;
    request.mutable_ref()->set_dataset("varied");
    request.mutable_ref()->set_split("train");
    request.set_global_batch(40);
    request.set_world_size(1);
    request.set_max_in_flight_bytes(8000);
    request.set_stream_id("held-" + std::to_string(next_id++));
    held.reader = held.stub->Stream(held.context.get(), request);
    pb::RecordChunk chunk;
    held.served = held.reader->Read(&chunk);
    return held;
  };
  auto refusal = [](Held& held) {
    pb::RecordChunk chunk;
    while (held.reader->Read(&chunk)) {
    }
    return held.reader->Finish();
  };
  const int64_t threads_before = ThreadCount();
  std::vector<Held> held;
  for (int i = 0; i < 3; ++i) held.push_back(open("client-a"));
  for (const auto& h : held) EXPECT_TRUE(h.served);
  Held fourth = open("client-a");  // over client-a's share
  ASSERT_FALSE(fourth.served);
  grpc::Status s = refusal(fourth);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("client-a holds 3 streams, its share of 3"), std::string::npos)
      << s.error_message();
  for (int i = 0; i < 3; ++i) held.push_back(open("client-b"));
  for (int i = 0; i < 2; ++i) held.push_back(open("client-c"));
  for (const auto& h : held) EXPECT_TRUE(h.served);
  // The pool is full: 300 more attempts from 100 clients are refused, and hold no thread.
  int refused = 0;
  for (int i = 0; i < 300; ++i) {
    Held extra = open("client-x" + std::to_string(i % 100));
    if (!extra.served && refusal(extra).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
    }
  }
  EXPECT_EQ(refused, 300);
  EXPECT_LE(ThreadCount(), threads_before + 8 + 40) << "threads: " << threads_before << " before";

  // A trainer's client refused for a busy service waits and retries; it is served once the
  // idle streams end (4 s without an acknowledgement).
  auto waiting = ConnectDataService(address, "varied", "train", DataClientOptions());
  ASSERT_TRUE(waiting.ok()) << waiting.status().ToString();
  auto records = Stream(**waiting, StreamSpec{0, 40, 0, 1, 0, 0, 200});
  EXPECT_EQ(records.size(), 200u);
  // A client that pauses past the idle timeout mid-stream is closed, reopens after the last
  // record it took, and gets the same records as one that never paused.
  DataClientOptions small;
  small.max_in_flight_bytes = 8000;
  auto pausing = ConnectDataService(address, "varied", "train", small);
  ASSERT_TRUE(pausing.ok()) << pausing.status().ToString();
  const StreamSpec spec{3, 40, 1, 2, 0, 470, 160};  // crosses an epoch end (500 per rank)
  auto stream = (*pausing)->OpenStream(spec);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  std::vector<StreamedRecord> paused;
  StreamedRecord record;
  for (int i = 0; i < 160; ++i) {
    // After cursor 499, the epoch's last: the stream reopens at epoch 1, cursor 0.
    if (i == 30) std::this_thread::sleep_for(std::chrono::milliseconds(5000));
    auto more = (*stream)->Next(record);
    ASSERT_TRUE(more.ok()) << i << ": " << more.status().ToString();
    ASSERT_TRUE(*more) << i;
    paused.push_back(record);
  }
  auto done = (*stream)->Next(record);
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(*done);
  ExpectSameRecords(paused, Stream(*local_, spec));
  for (auto& h : held) {
    grpc::Status ended = refusal(h);
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << ended.error_message();
    EXPECT_NE(ended.error_message().find("--stream-idle-timeout-s"), std::string::npos);
  }
  // A client that cancels its stream.
  Held cancelled = open("client-a");
  ASSERT_TRUE(cancelled.served);
  cancelled.context->TryCancel();
  (void)refusal(cancelled);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));

  const std::string metrics = HttpGetMetrics(server->metrics_port());
  EXPECT_EQ(MetricValue(metrics, "maestro_data_streams_ended_total{outcome=\"idle\"}"), 9)
      << metrics;
  EXPECT_EQ(MetricValue(metrics, "maestro_data_streams_ended_total{outcome=\"completed\"}"), 2);
  EXPECT_EQ(MetricValue(metrics, "maestro_data_streams_ended_total{outcome=\"cancelled\"}"), 1);
  // The fourth of client-a, the 300, and at least one of the waiting client's tries.
  EXPECT_GE(
      MetricValue(metrics, "maestro_data_requests_rejected_total{code=\"RESOURCE_EXHAUSTED\"}"),
      302);
  // Neither the completed stream's last acknowledgement (NOT_FOUND: its series exists from the
  // start, at zero) nor the cancellation is a rejection.
  EXPECT_EQ(MetricValue(metrics, "maestro_data_requests_rejected_total{code=\"NOT_FOUND\"}"), 0);
  EXPECT_EQ(MetricValue(metrics, "maestro_data_requests_rejected_total{code=\"CANCELLED\"}"), -1);
  EXPECT_EQ(metrics.find("code=\"8\""), std::string::npos);
}

}  // namespace
}  // namespace maestro::dataloader
