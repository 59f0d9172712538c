// maestro-bench-coordinator: the coordinator's scale check, against a real
// CoordinatorServer on 127.0.0.1 (gRPC, a fresh RocksDB store in --db):
//
// 1. CreateExperiment of --experiment (a 10,000-trial grid): parse, expand, validate every
//    trial config with the trainer's schema, identify, store in one synced batch; seconds end
//    to end through gRPC.
// 2. --workers simulated workers heartbeat at --rate Hz for --seconds: each registers, gets one
//    trial of that grid assigned, then reports its progress (step, loss) and a log line with
//    every heartbeat, as a busy worker does. Latency percentiles of the heartbeat RPCs.
//
//   maestro-bench-coordinator --experiment FILE --db DIR [--workers 500] [--seconds 20]
//                             [--out results.json]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>

#include "maestro/coordinator/experiment.h"
#include "maestro/coordinator/service.h"
#include "maestro/coordinator/v1/coordinator.grpc.pb.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"
#include "maestro/shared/version.h"

namespace {

namespace pb = maestro::coordinator::v1;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

grpc::ClientContext* WithDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return &context;
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1,
                         static_cast<size_t>(q * static_cast<double>(values.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  std::string experiment, db, out;
  int64_t workers = 500, threads = 16;
  double seconds = 20, rate = 1;
  maestro::FlagParser flags(
      "maestro-bench-coordinator",
      "The coordinator's scale check on a real server (127.0.0.1, fresh store in --db):\n"
      "seconds to create a large grid experiment, then heartbeat latency of simulated busy\n"
      "workers.");
  flags.Add("experiment", &experiment, "experiment file (bench/coordinator_grid_10k.yaml)");
  flags.Add("db", &db, "store folder (removed first)");
  flags.Add("workers", &workers, "simulated workers");
  flags.Add("rate", &rate, "heartbeats per second per worker");
  flags.Add("seconds", &seconds, "how long the workers heartbeat");
  flags.Add("threads", &threads, "client threads driving the simulated workers");
  flags.Add("out", &out, "write the figures as JSON here");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  try {
    auto tree = maestro::coordinator::LoadExperimentInlined(experiment);
    if (!tree.ok()) throw maestro::Error(tree.status());
    if (auto removed = maestro::RemoveTree(db); !removed.ok()) throw maestro::Error(removed);
    maestro::ThrowIfError(maestro::MakeDirectories(db + "/runs"));
    maestro::coordinator::CoordinatorOptions options;
    options.db_dir = db + "/state";
    options.listen = "127.0.0.1:0";
    // The scheduler's cost under load is what is measured here, on loopback; the per-call
    // token check (a hash and a map lookup) is not part of it.
    options.insecure = true;
    options.scheduler.runs_dir = db + "/runs";
    auto roots = maestro::PathRoots::Make({"/bench"}, "--data-root", false);
    if (!roots.ok()) throw maestro::Error(roots.status());
    options.scheduler.data_roots = *roots;
    options.scheduler.heartbeat_interval_ms = static_cast<int64_t>(1000 / rate);
    options.scheduler.worker_timeout_ms = 60000;
    auto server = maestro::coordinator::CoordinatorServer::Start(options);
    if (!server.ok()) throw maestro::Error(server.status());
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                       grpc::InsecureChannelCredentials());
    auto stub = pb::Coordinator::NewStub(channel);

    pb::RegisterDatasetRequest dataset;
    dataset.set_name(tree->Find("dataset")->as_string());
    dataset.set_dataset_json(
        R"({"path": "/bench", "splits": {"train": {"content_hash": "b", "count": 1}}})");
    pb::RegisterDatasetResponse registered;
    grpc::ClientContext c0;
    if (!stub->RegisterDataset(WithDeadline(c0), dataset, &registered).ok()) {
      throw maestro::Error(maestro::InternalError("RegisterDataset failed"));
    }
    pb::CreateExperimentRequest create;
    create.set_experiment_json(tree->Dump());
    pb::CreateExperimentResponse created;
    grpc::ClientContext c1;
    const auto t0 = Clock::now();
    const grpc::Status status = stub->CreateExperiment(WithDeadline(c1), create, &created);
    const auto t1 = Clock::now();
    if (!status.ok()) throw maestro::Error(maestro::InternalError(status.error_message()));
    const double create_s = Seconds(t0, t1);
    std::cout << "created " << created.trial_ids_size() << " trials in " << create_s << " s"
              << std::endl;

    // Heartbeats: worker w sends at phase (w / workers) of every period.
    const auto period = std::chrono::duration<double>(1.0 / rate);
    std::vector<std::vector<double>> latencies(static_cast<size_t>(threads));
    std::atomic<int64_t> failures{0}, assignments{0};
    const auto start = Clock::now() + std::chrono::milliseconds(500);
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        auto my_stub = pb::Coordinator::NewStub(grpc::CreateChannel(
            "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials()));
        struct Sim {
          std::string id, session;
          int64_t trial = 0, attempt = 0, step = 0, log_offset = 0;
          Clock::time_point next;
        };
        std::vector<Sim> sims;
        for (int64_t w = t; w < workers; w += threads) {
          Sim sim;
          sim.id = "sim-" + std::to_string(w);
          pb::RegisterWorkerRequest request;
          request.set_worker_id(sim.id);
          request.set_protocol_version(maestro::kWorkerProtocolVersion);
          request.set_build(maestro::MaestroBuild());
          request.mutable_resources()->set_slots(1);
          pb::RegisterWorkerResponse response;
          grpc::ClientContext context;
          if (!my_stub->RegisterWorker(WithDeadline(context), request, &response).ok()) {
            ++failures;
            continue;
          }
          sim.session = response.session_id();
          sim.next = start + std::chrono::duration_cast<Clock::duration>(
                                 period * (static_cast<double>(w) / static_cast<double>(workers)));
          sims.push_back(std::move(sim));
        }
        const auto end = start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(seconds));
        while (true) {
          auto next = std::min_element(sims.begin(), sims.end(),
                                       [](const Sim& a, const Sim& b) { return a.next < b.next; });
          if (next == sims.end() || next->next >= end) break;
          std::this_thread::sleep_until(next->next);
          Sim& sim = *next;
          pb::HeartbeatRequest request;
          request.set_worker_id(sim.id);
          request.set_session_id(sim.session);
          request.set_free_slots(sim.trial == 0 ? 1 : 0);
          if (sim.trial != 0) {
            auto* held = request.add_held();
            held->set_trial_id(sim.trial);
            held->set_attempt(sim.attempt);
            sim.step += 10;
            auto* p = request.add_progress();
            p->set_trial_id(sim.trial);
            p->set_attempt(sim.attempt);
            p->set_step(sim.step);
            p->set_total_steps(100000);
            p->set_loss(1.0 / static_cast<double>(sim.step));
            p->set_stage("pretrain");
            const std::string line = "step " + std::to_string(sim.step) +
                                     "/100000 (0.0%)  epoch 0.01  loss 0.1234  lr 1.0e-04  "
                                     "500 img/s  ETA 1h00m\n";
            auto* log = request.add_logs();
            log->set_trial_id(sim.trial);
            log->set_attempt(sim.attempt);
            log->set_offset(sim.log_offset);
            log->set_data(line);
            sim.log_offset += static_cast<int64_t>(line.size());
          }
          pb::HeartbeatResponse response;
          grpc::ClientContext context;
          const auto sent = Clock::now();
          const grpc::Status s = my_stub->Heartbeat(WithDeadline(context), request, &response);
          const auto answered = Clock::now();
          if (!s.ok() || response.reregister()) {
            ++failures;
          } else {
            latencies[static_cast<size_t>(t)].push_back(Seconds(sent, answered) * 1000);
            if (response.assignments_size() > 0) {
              sim.trial = response.assignments(0).trial_id();
              sim.attempt = response.assignments(0).attempt();
              ++assignments;
            }
          }
          sim.next += std::chrono::duration_cast<Clock::duration>(period);
        }
      });
    }
    for (auto& thread : pool) thread.join();
    std::vector<double> all;
    for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    maestro::Json result(maestro::Json::Object{
        {"grid_trials", static_cast<int64_t>(created.trial_ids_size())},
        {"create_experiment_s", create_s},
        {"workers", workers},
        {"heartbeat_rate_hz", rate},
        {"heartbeat_seconds", seconds},
        {"heartbeats", static_cast<int64_t>(all.size())},
        {"heartbeat_failures", failures.load()},
        {"trials_assigned", assignments.load()},
        {"heartbeat_ms_p50", Percentile(all, 0.50)},
        {"heartbeat_ms_p90", Percentile(all, 0.90)},
        {"heartbeat_ms_p99", Percentile(all, 0.99)},
        {"heartbeat_ms_max", Percentile(all, 1.0)},
        {"each_heartbeat_carries",
         "progress (one metric record) and a log line, stored in one "
         "RocksDB batch; the first one takes an assignment"},
        {"cpu", "this machine's " + std::to_string(std::thread::hardware_concurrency()) +
                    " cores shared by the server and the simulated workers"},
    });
    std::cout << result.Dump() << std::endl;
    (*server)->Shutdown();
    if (!out.empty()) maestro::ThrowIfError(maestro::WriteFileAtomic(out, result.Dump() + "\n"));
    return 0;
  } catch (const maestro::Error& e) {
    std::cerr << "maestro-bench-coordinator: " << e.status().ToString() << "\n";
    return 1;
  }
}
