// maestro-data: the data service of the data path.
//
//   maestro-data serve --dataset [NAME=]DIR[,...] --credentials DIR [--listen 127.0.0.1:PORT] ...
//   maestro-data list --address HOST:PORT
//   maestro-data stream (--address HOST:PORT --dataset NAME | --local DIR) --split S ...
//
// `serve` runs until SIGTERM or SIGINT. `stream` reads one rank's stream (from the service, or
// from local shards through the same interface) and prints its record count, bytes, rate and
// a sha256 over every (index, value): what the tests compare and the benchmark measures.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "maestro/dataloader/data_client.h"
#include "maestro/dataloader/data_service.h"
#include "maestro/dataloader/records.h"
#include "maestro/dataloader/shards.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"
#include "maestro/shared/sha256.h"
#include "maestro/shared/stop_signals.h"

namespace {

using maestro::Error;
using maestro::FlagParser;
using maestro::InvalidArgumentError;
namespace dl = maestro::dataloader;

constexpr const char* kUsage = R"(usage: maestro-data <command> [flags]

commands:
  serve    serve ingested datasets (RocksDB shards) over gRPC, with Prometheus /metrics
  list     what a server serves: dataset, split, name, content hash, records
  stream   read one rank's record stream (service or local shards); print count, bytes,
           MB/s and a sha256 over every record

`maestro-data <command> --help` explains each command's flags.
)";

// "NAME=DIR" or "DIR" (the name is DIR's last component), comma-separated.
std::vector<std::pair<std::string, std::string>> ParseDatasets(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    std::string name, dir = item;
    if (const size_t eq = item.find('='); eq != std::string::npos) {
      name = item.substr(0, eq);
      dir = item.substr(eq + 1);
    } else {
      name = maestro::BaseName(dir);
    }
    out.emplace_back(name, dir);
  }
  return out;
}

// --ca and --token-file of the commands that read from a server.
void AddClientFlags(FlagParser& flags, dl::DataClientOptions& options) {
  flags.Add("ca", &options.ca_file,
            "the cluster CA the server's certificate is checked against (default: $MAESTRO_CA)");
  flags.Add("token-file", &options.token_file,
            "file holding a data token (`maestro cluster data-token`; default: "
            "$MAESTRO_DATA_TOKEN_FILE)");
}

int Serve(int argc, char** argv) {
  dl::DataServerOptions options;
  options.listen = "127.0.0.1:7070";  // a fixed default a trainer's config can name
  std::string datasets;
  int64_t in_flight = options.default_in_flight_bytes;
  FlagParser flags("maestro-data serve",
                   "Serves the splits of ingested datasets (folders written by `maestro data\n"
                   "ingest`: ROOT/<split>/manifest.json + shards) to trainers over gRPC:\n"
                   "each client streams one rank's records in the sampler's order from a\n"
                   "cursor, with bounded in-flight bytes. Shards are opened read-only. Runs\n"
                   "until SIGTERM or SIGINT.");
  flags.Add("dataset", &datasets,
            "datasets to serve, comma-separated: NAME=ROOT, or ROOT (named after its folder)");
  flags.Add("listen", &options.listen,
            "gRPC address host:port (0.0.0.0:PORT for other machines; port 0: any free port, "
            "printed at start)");
  flags.Add("metrics-listen", &options.metrics_listen,
            "Prometheus /metrics address host:port, a loopback address only (empty: no "
            "/metrics)");
  flags.Add("max-streams", &options.max_streams,
            "streams served at once (each holds a thread); beyond: RESOURCE_EXHAUSTED, and "
            "trainers wait and retry");
  flags.Add("max-streams-per-client", &options.max_streams_per_client,
            "streams one client (a data token's subject) may hold at once (0: a quarter of "
            "--max-streams)");
  flags.Add("stream-idle-timeout-s", &options.stream_idle_timeout_s,
            "a stream whose client acknowledges nothing for this long is closed");
  flags.Add("max-in-flight-bytes", &in_flight,
            "default bound on record bytes sent to a stream and not yet acknowledged");
  flags.Add("credentials", &options.credentials_dir,
            "the cluster folder of `maestro cluster init` (data.crt, data.key, data-token.key): "
            "TLS, and every call must carry a data token signed with the cluster's key");
  flags.Add("insecure", &options.insecure,
            "serve plaintext without authentication (only on a loopback --listen address)");
  maestro::ParseFlagsOrExit(flags, argc - 1, argv + 1);
  options.datasets = ParseDatasets(datasets);
  if (options.datasets.empty()) throw Error(InvalidArgumentError("--dataset is required"));
  if (in_flight <= 0) throw Error(InvalidArgumentError("--max-in-flight-bytes must be positive"));
  options.default_in_flight_bytes = in_flight;

  const sigset_t stop = maestro::BlockStopSignals();  // before the server's threads start

  auto server = dl::DataServer::Start(options);
  if (!server.ok()) throw Error(server.status());
  if (options.insecure) {
    std::cout << "WARNING: --insecure: plaintext, no authentication; anyone who can reach "
              << options.listen << " reads every dataset" << std::endl;
  }
  for (const auto& split : (*server)->splits()) {
    std::cout << "serving " << split.dataset << "/" << split.split << " (" << split.name << ", "
              << split.count << " records, " << split.storage << ", content hash "
              << split.content_hash.substr(0, 16) << ")\n";
  }
  // The line scripts wait for: the bound ports.
  std::cout << "listening on port " << (*server)->port();
  if ((*server)->metrics_port() != 0)
    std::cout << ", metrics on port " << (*server)->metrics_port();
  std::cout << std::endl;
  std::cout << "stopping on signal " << maestro::AwaitStopSignal(stop) << std::endl;
  (*server)->Shutdown();
  return 0;
}

int List(int argc, char** argv) {
  std::string address;
  FlagParser flags("maestro-data list", "Lists what a maestro-data server serves.");
  dl::DataClientOptions options;
  flags.Add("address", &address, "the server, host:port");
  AddClientFlags(flags, options);
  maestro::ParseFlagsOrExit(flags, argc - 1, argv + 1);
  if (address.empty()) throw Error(InvalidArgumentError("--address is required"));
  auto lines = dl::ListServedSplits(address, options);
  if (!lines.ok()) throw Error(lines.status());
  std::cout << "dataset split name content_hash records\n";
  for (const auto& line : *lines) std::cout << line << "\n";
  return 0;
}

// Writes one record's payload and header line (maestro-data stream --dump).
void Dump(const dl::StreamedRecord& record, const std::string& dir, std::ofstream& listing) {
  auto format = dl::RecordFormatOf(record.value, record.index);
  if (!format.ok()) throw Error(format.status());
  std::string payload;
  maestro::Json::Object line{
      {"index", record.index}, {"epoch", record.epoch}, {"cursor", record.cursor}};
  if (*format == dl::RecordFormat::kRawU8) {
    auto sample = dl::DecodeRecord(record.value, record.index);
    if (!sample.ok()) throw Error(sample.status());
    payload.assign(sample->pixels.begin(), sample->pixels.end());
    line.emplace("format", "raw");
    line.emplace("label", sample->label);
    line.emplace("height", sample->height);
    line.emplace("width", sample->width);
  } else {
    auto sample = dl::DecodeEncodedRecord(record.value, record.index);
    if (!sample.ok()) throw Error(sample.status());
    payload = std::move(sample->bytes);
    line.emplace("format", *format == dl::RecordFormat::kJpeg ? "jpeg" : "png");
    line.emplace("label", sample->label);
    line.emplace("height", sample->height);
    line.emplace("width", sample->width);
  }
  auto written =
      maestro::WriteFileAtomic(dir + "/" + std::to_string(record.index) + ".bin", payload);
  if (!written.ok()) throw Error(written);
  listing << maestro::Json(std::move(line)).Dump() << "\n";
}

int Stream(int argc, char** argv) {
  std::string address, dataset, local, split = "train", dump;
  int64_t seed = 0, global_batch = 256, rank = 0, world_size = 1, epoch = 0, cursor = 0, limit = 0,
          in_flight = 0, stall_after = -1;
  bool hash_records = true;
  FlagParser flags(
      "maestro-data stream",
      "Reads one rank's record stream, from a data service (--address, --dataset) or from\n"
      "local shards (--local ROOT) through the same interface, and prints one JSON line:\n"
      "records, bytes, seconds, MB/s and a sha256 over every (index, value).");
  flags.Add("address", &address, "data service host:port");
  dl::DataClientOptions options;
  AddClientFlags(flags, options);
  flags.Add("dataset", &dataset, "dataset name on the service");
  flags.Add("local", &local, "read ROOT/<split> from disk instead of a service");
  flags.Add("split", &split, "split");
  flags.Add("seed", &seed, "shuffle seed");
  flags.Add("global-batch", &global_batch, "samples per global step, all ranks");
  flags.Add("rank", &rank, "this rank");
  flags.Add("world-size", &world_size, "ranks");
  flags.Add("epoch", &epoch, "first epoch");
  flags.Add("cursor", &cursor, "position in the rank's epoch sequence");
  flags.Add("limit", &limit, "records to read (0: until interrupted)");
  flags.Add("max-in-flight-bytes", &in_flight, "flow-control bound (0: the server's default)");
  flags.Add("stall-after", &stall_after,
            "stop reading after this many records and sleep until killed (tests a stalled "
            "client; -1: never)");
  flags.Add("dump", &dump,
            "write each record's payload to DIR/<index>.bin (the stored file for JPEG and PNG "
            "records, pixels for raw ones) and its header to DIR/records.jsonl");
  flags.Add("hash", &hash_records,
            "hash every record (--hash=false measures the stream alone; sha256 is then empty)");
  maestro::ParseFlagsOrExit(flags, argc - 1, argv + 1);

  std::unique_ptr<dl::RecordStore> store;
  if (!local.empty()) {
    auto opened = dl::OpenShardStore(local + "/" + split);
    if (!opened.ok()) throw Error(opened.status());
    store = std::move(*opened);
  } else {
    if (address.empty() || dataset.empty()) {
      throw Error(InvalidArgumentError("give --address and --dataset, or --local"));
    }
    options.max_in_flight_bytes = in_flight;
    auto connected = dl::ConnectDataService(address, dataset, split, options);
    if (!connected.ok()) throw Error(connected.status());
    store = std::move(*connected);
  }
  dl::StreamSpec spec;
  spec.seed = static_cast<uint64_t>(seed);
  spec.global_batch = global_batch;
  spec.rank = rank;
  spec.world_size = world_size;
  spec.epoch = epoch;
  spec.cursor = cursor;
  spec.limit = limit;
  auto stream = store->OpenStream(spec);
  if (!stream.ok()) throw Error(stream.status());
  std::ofstream listing;
  if (!dump.empty()) {
    if (auto made = maestro::MakeDirectories(dump); !made.ok()) throw Error(made);
    listing.open(dump + "/records.jsonl");
  }
  maestro::Sha256 hash;
  int64_t records = 0, bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  dl::StreamedRecord record;
  for (;;) {
    if (stall_after >= 0 && records == stall_after) {
      std::cout << "stalled after " << records << " records" << std::endl;
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(60));
    }
    auto more = (*stream)->Next(record);
    if (!more.ok()) throw Error(more.status());
    if (!*more) break;
    if (hash_records) {
      const std::string index = std::to_string(record.index) + ":";
      hash.Update(index);
      hash.Update(record.value);
    }
    if (!dump.empty()) Dump(record, dump, listing);
    ++records;
    bytes += static_cast<int64_t>(record.value.size());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  maestro::Json out(maestro::Json::Object{
      {"records", records},
      {"bytes", bytes},
      {"seconds", seconds},
      {"mb_per_s", static_cast<double>(bytes) / 1e6 / std::max(seconds, 1e-9)},
      {"sha256", hash_records ? hash.HexDigest() : std::string()},
  });
  std::cout << out.Dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "serve") return Serve(argc, argv);
    if (command == "list") return List(argc, argv);
    if (command == "stream") return Stream(argc, argv);
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return 0;
    }
    std::cerr << (command.empty() ? std::string("no command given")
                                  : "unknown command '" + command + "'")
              << "\n\n"
              << kUsage;
    return 2;
  } catch (const Error& e) {
    std::cerr << "maestro-data " << command << ": " << e.status().ToString() << "\n";
    return e.status().code() == maestro::StatusCode::kUnavailable ? 3 : 2;
  }
}
