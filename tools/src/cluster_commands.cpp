#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "command_util.h"
#include "experiment_commands.h"
#include "maestro/coordinator/trial_record.h"
#include "maestro/shared/file_util.h"

namespace maestro::tools {
namespace {

// A trial state name the coordinator sent: finished (nothing more will run)?
bool IsFinalState(const std::string& state) {
  auto parsed = coordinator::ParseTrialState(state);
  return parsed.has_value() && coordinator::IsFinished(*parsed);
}

// A table printed as aligned text, markdown or CSV.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, const std::string& format) {
  if (format == "csv") {
    auto quote = [](const std::string& cell) {
      if (cell.find_first_of(",\"\n") == std::string::npos) return cell;
      std::string out = "\"";
      for (char c : cell) out += c == '"' ? std::string("\"\"") : std::string(1, c);
      return out + "\"";
    };
    for (const auto* row : {&header}) {
      for (size_t i = 0; i < row->size(); ++i) std::cout << (i ? "," : "") << quote((*row)[i]);
      std::cout << "\n";
    }
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) std::cout << (i ? "," : "") << quote(row[i]);
      std::cout << "\n";
    }
    return;
  }
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  const bool markdown = format == "markdown";
  auto print = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      std::cout << (markdown ? "| "
                    : i      ? "  "
                             : "")
                << std::left << std::setw(width[i]) << row[i] << (markdown ? " " : "");
    }
    std::cout << (markdown ? "|" : "") << "\n";
  };
  print(header);
  if (markdown) {
    for (size_t i = 0; i < header.size(); ++i) std::cout << "|" << std::string(width[i] + 2, '-');
    std::cout << "|\n";
  }
  for (const auto& row : rows) print(row);
}

std::string Percent(const Json* value) {
  if (value == nullptr || !value->is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", value->as_double());
  return text;
}

// Progress records as one row each: trial, attempt, stage, step first, then every other key
// (sorted); or one JSON object per line.
void PrintHistory(const std::vector<Json>& records, bool json, const std::string& format) {
  if (json) {
    for (const Json& r : records) std::cout << r.Dump() << "\n";
    return;
  }
  const std::vector<std::string> first = {"trial", "attempt", "stage", "step"};
  std::set<std::string> others;
  for (const Json& r : records) {
    if (!r.is_object()) continue;
    for (const auto& [key, unused] : r.as_object()) {
      if (std::find(first.begin(), first.end(), key) == first.end()) others.insert(key);
    }
  }
  std::vector<std::string> header = first;
  header.insert(header.end(), others.begin(), others.end());
  std::vector<std::vector<std::string>> rows;
  for (const Json& r : records) {
    std::vector<std::string> row;
    for (const std::string& key : header) {
      const Json* v = r.Find(key);
      row.push_back(v != nullptr ? Cell(*v) : "");
    }
    rows.push_back(std::move(row));
  }
  PrintTable(header, rows, format);
}

// A config tree as dotted keys (lists and scalars as their JSON text).
void Flatten(const Json& tree, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (tree.is_object() && !tree.as_object().empty()) {
    for (const auto& [key, value] : tree.as_object()) {
      Flatten(value, prefix.empty() ? key : prefix + "." + key, out);
    }
    return;
  }
  out[prefix] = tree.is_string() ? tree.as_string() : tree.Dump();
}

}  // namespace

int ExperimentContinue(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  FlagParser flags("maestro experiment continue ID",
                   "Continues a sweep after errors: the experiment's failed and canceled trials\n"
                   "are queued again, each with a fresh restart budget, and resume from their\n"
                   "latest checkpoints. A trial shared with another experiment (the same cell)\n"
                   "is continued once, for both. A canceled experiment is active again.");
  AddCoordinatorFlags(flags, &address);
  const std::string id_text = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !id_text.empty());
  const int64_t id = ParseId(id_text, "experiment");
  auto queued = Connect(address)->ContinueExperiment(id);
  if (!queued.ok()) throw Error(queued.status());
  std::cout << "experiment " << id << " continued: " << *queued << " trials queued again\n";
  return 0;
}

int ExperimentExtend(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  int64_t trials = 0;
  FlagParser flags("maestro experiment extend ID --trials N",
                   "Adds N trials to a random or asha search: its next N draws (the earlier\n"
                   "trials keep their values), queued at once (asha: to its first rung, where\n"
                   "they join its promotions). A grid's trials are its cells: submit a grid with\n"
                   "more values instead.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("trials", &trials, "how many trials to add (required)");
  const std::string id_text = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !id_text.empty());
  const int64_t id = ParseId(id_text, "experiment");
  if (trials <= 0) throw Error(InvalidArgumentError("--trials N: how many to add, at least 1"));
  auto added = Connect(address)->ExtendExperiment(id, trials);
  if (!added.ok()) throw Error(added.status());
  std::cout << "experiment " << id << " extended by " << added->size() << " trials:";
  for (int64_t t : *added) std::cout << " " << t;
  std::cout << "\n";
  return 0;
}

int TrialCompare(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  bool json = false;
  FlagParser flags("maestro trial compare A B",
                   "Two trials side by side: only the config keys whose values differ (each\n"
                   "stage's trainer config, as the coordinator makes it), then both metric\n"
                   "histories by stage and step (the latest attempt's record of each step).");
  AddCoordinatorFlags(flags, &address);
  flags.Add("json", &json, "print one JSON object: {trials, differences, history}");
  std::vector<std::string> ids;
  for (int i = 3; i < argc && argv[i][0] != '-' && ids.size() < 2; ++i) ids.push_back(argv[i]);
  std::vector<char*> rest = {argv[0], argv[1], argv[2]};
  for (int i = 3 + static_cast<int>(ids.size()); i < argc; ++i) rest.push_back(argv[i]);
  ParseVerbFlags(flags, static_cast<int>(rest.size()), rest.data(), false);
  if (ids.size() != 2)
    throw Error(InvalidArgumentError("give two trial ids: maestro trial compare A B"));
  const int64_t a = ParseId(ids[0], "trial"), b = ParseId(ids[1], "trial");
  auto client = Connect(address);
  std::map<std::string, std::string> config[2];
  std::map<std::pair<std::string, int64_t>, Json> steps[2];  // (stage, step) -> record
  for (int side = 0; side < 2; ++side) {
    const int64_t id = side == 0 ? a : b;
    auto trial = client->GetTrial(id);
    if (!trial.ok()) throw Error(trial.status());
    Flatten(trial->second, "", config[side]);
    auto history = client->MetricHistory(0, id);
    if (!history.ok()) throw Error(history.status());
    for (const Json& r : *history) {  // in attempt order: a later attempt's record wins
      steps[side][{r.StringOr("stage"), r.IntOr("step", 0)}] = r;
    }
  }
  std::set<std::string> keys;
  for (const auto& side : config) {
    for (const auto& [key, unused] : side) keys.insert(key);
  }
  std::vector<std::vector<std::string>> differences;
  Json::Object differences_json;
  for (const std::string& key : keys) {
    auto va = config[0].find(key), vb = config[1].find(key);
    const std::string x = va != config[0].end() ? va->second : "-";
    const std::string y = vb != config[1].end() ? vb->second : "-";
    if (x == y) continue;
    differences.push_back({key, x, y});
    differences_json[key] = Json(Json::Array{Json(x), Json(y)});
  }
  std::set<std::pair<std::string, int64_t>> points;
  for (const auto& side : steps) {
    for (const auto& [point, unused] : side) points.insert(point);
  }
  auto figure = [](const std::map<std::pair<std::string, int64_t>, Json>& side,
                   const std::pair<std::string, int64_t>& point, const char* key) {
    auto it = side.find(point);
    const Json* v = it != side.end() ? it->second.Find(key) : nullptr;
    return v != nullptr ? Cell(*v) : std::string("-");
  };
  if (json) {
    Json::Array history;
    for (const auto& point : points) {
      Json::Object row{{"stage", point.first}, {"step", point.second}};
      for (int side = 0; side < 2; ++side) {
        auto it = steps[side].find(point);
        row[side == 0 ? "a" : "b"] = it != steps[side].end() ? it->second : Json();
      }
      history.emplace_back(std::move(row));
    }
    std::cout << Json(Json::Object{{"trials", Json(Json::Array{Json(a), Json(b)})},
                                   {"differences", Json(std::move(differences_json))},
                                   {"history", Json(std::move(history))}})
                     .Dump()
              << "\n";
    return 0;
  }
  const std::string ta = "trial " + std::to_string(a), tb = "trial " + std::to_string(b);
  std::cout << "config keys that differ (" << differences.size() << "):\n";
  PrintTable({"key", ta, tb}, differences, "table");
  std::vector<std::vector<std::string>> rows;
  for (const auto& point : points) {
    rows.push_back({point.first, std::to_string(point.second), figure(steps[0], point, "loss"),
                    figure(steps[1], point, "loss"), figure(steps[0], point, "lr"),
                    figure(steps[1], point, "lr")});
  }
  std::cout << "\nmetric histories (" << points.size() << " steps):\n";
  PrintTable({"stage", "step", ta + " loss", tb + " loss", ta + " lr", tb + " lr"}, rows, "table");
  return 0;
}

int ExperimentCancel(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  FlagParser flags("maestro experiment cancel ID",
                   "Cancels an experiment: its queued trials are canceled, its running trials\n"
                   "stopped by their workers (SIGTERM, grace period, SIGKILL). Completed trials\n"
                   "keep their results.");
  AddCoordinatorFlags(flags, &address);
  const std::string id_text = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !id_text.empty());
  const int64_t id = ParseId(id_text, "experiment");
  auto canceled = Connect(address)->CancelExperiment(id);
  if (!canceled.ok()) throw Error(canceled.status());
  std::cout << "experiment " << id << " canceled: " << canceled->first
            << " queued trials canceled, " << canceled->second << " running trials stopping\n";
  return 0;
}

int ExperimentResults(int argc, char** argv) {
  std::string address = "127.0.0.1:7071", format = "table";
  bool json = false;
  FlagParser flags("maestro experiment results ID",
                   "One row per trial, like the paper's Table 1: the swept values, the state,\n"
                   "the final pretraining loss and, for fine-tuning / linear probing (or a\n"
                   "pipeline's evaluations), the final top-1 accuracy in percent.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("format", &format, "table, markdown or csv");
  flags.Add("json", &json, "print JSON (one object per trial; with --history, per record)");
  bool history = false;
  flags.Add("history", &history,
            "every progress record every trial reported (trial, attempt, stage, step, loss, "
            "lr, images/s, time), read page by page: CSV by default, or --json");
  const std::string id_text = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !id_text.empty());
  if (format != "table" && format != "markdown" && format != "csv") {
    throw Error(InvalidArgumentError("--format: table, markdown or csv, not '" + format + "'"));
  }
  const int64_t id = ParseId(id_text, "experiment");
  if (history) {
    auto records = Connect(address)->MetricHistory(id, 0);
    if (!records.ok()) throw Error(records.status());
    PrintHistory(*records, json, format == "table" ? "csv" : format);
    return 0;
  }
  auto described = Connect(address)->DescribeExperiment(id);
  if (!described.ok()) throw Error(described.status());
  const auto& [experiment, trials] = *described;
  // The swept keys: those whose value differs between trials (all of them for one trial).
  std::set<std::string> keys, swept;
  for (const Json& t : trials) {
    for (const auto& [key, value] : t.Find("hparams")->as_object()) keys.insert(key);
  }
  for (const std::string& key : keys) {
    std::set<std::string> values;
    for (const Json& t : trials) {
      const Json* v = t.Find("hparams")->Find(key);
      values.insert(v ? v->Dump() : "");
    }
    if (values.size() > 1 || trials.size() == 1) swept.insert(key);
  }
  // The stages with results, in the order trials recorded them: pretrain first.
  std::vector<std::string> stages;
  for (const Json& t : trials) {
    const Json* results = t.Find("results");
    if (results == nullptr || !results->is_object()) continue;
    for (const auto& [stage, unused] : results->as_object()) {
      if (std::find(stages.begin(), stages.end(), stage) == stages.end()) stages.push_back(stage);
    }
  }
  std::stable_sort(stages.begin(), stages.end(), [](const std::string& a, const std::string& b) {
    return (a == "pretrain") > (b == "pretrain");
  });
  // An asha search: the rung each trial trains to or stopped at, and its metric at each rung.
  const Json* searcher =
      experiment.Find("spec") != nullptr ? experiment.Find("spec")->Find("searcher") : nullptr;
  const bool asha = searcher != nullptr && searcher->StringOr("name") == "asha";
  std::vector<std::string> header = {"trial"};
  header.insert(header.end(), swept.begin(), swept.end());
  header.push_back("state");
  if (asha) {
    header.push_back("rung");
    header.push_back(searcher->StringOr("metric", "metric") + " by rung");
  }
  for (const auto& stage : stages) {
    header.push_back(stage == "pretrain" ? "pretrain loss" : stage + " top-1 %");
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& t : trials) {
    std::vector<std::string> row = {std::to_string(t.Find("id")->as_int())};
    for (const auto& key : swept) {
      const Json* v = t.Find("hparams")->Find(key);
      row.push_back(v ? Cell(*v) : "-");
    }
    row.push_back(t.Find("state")->as_string());
    if (asha) {
      const Json* rung = t.Find("rung");
      row.push_back(std::to_string(rung != nullptr && rung->is_int() ? rung->as_int() : 0));
      std::string metrics;
      if (const Json* list = t.Find("rung_metrics"); list != nullptr && list->is_array()) {
        for (const Json& m : list->as_array()) {
          char text[32];
          std::snprintf(text, sizeof(text), "%.4f", m.is_number() ? m.as_double() : 0);
          metrics += (metrics.empty() ? "" : " / ") + std::string(text);
        }
      }
      row.push_back(metrics.empty() ? "-" : metrics);
    }
    const Json* results = t.Find("results");
    for (const auto& stage : stages) {
      const Json* r = results != nullptr ? results->Find(stage) : nullptr;
      if (r == nullptr || r->is_null()) {
        row.push_back("-");
      } else if (stage == "pretrain") {
        const Json* loss = r->Find("final_train_loss");
        char text[32];
        std::snprintf(text, sizeof(text), "%.4f",
                      loss && loss->is_number() ? loss->as_double() : 0);
        row.push_back(loss && loss->is_number() ? text : "-");
      } else {
        const Json* final = r->Find("final");
        row.push_back(Percent(final != nullptr ? final->Find("top1") : nullptr));
      }
    }
    if (json) {
      Json::Object object;
      for (size_t i = 0; i < header.size(); ++i) object[header[i]] = Json(row[i]);
      object["hparams"] = *t.Find("hparams");
      object["results"] = results != nullptr ? *results : Json();
      if (const Json* metrics = t.Find("rung_metrics")) object["rung_metrics"] = *metrics;
      if (const Json* cause = t.Find("cause")) object["cause"] = *cause;
      std::cout << Json(std::move(object)).Dump() << "\n";
    }
    rows.push_back(std::move(row));
  }
  if (json) return 0;
  if (format == "table") {
    std::cout << "experiment " << id << ": " << experiment.Find("name")->as_string() << " ("
              << experiment.Find("kind")->as_string() << " on "
              << experiment.Find("dataset")->as_string() << ")\n";
  }
  PrintTable(header, rows, format);
  return 0;
}

int TrialLogs(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  bool follow = false;
  int64_t offset = 0;
  FlagParser flags("maestro trial logs ID",
                   "A trial's captured trainer output, every attempt in order (each begins with\n"
                   "a '=== trial T attempt A ... ===' line). -f follows it until the trial ends,\n"
                   "or is stopped by its searcher (a stopped trial runs again only if promoted).");
  AddCoordinatorFlags(flags, &address);
  flags.Add("f", &follow,
            "(or -f) follow: keep printing new output until the trial is final or stopped");
  flags.Add("follow", &follow, "the same as -f");
  flags.Add("offset", &offset, "start at this byte of the log");
  // `-f` (spelled --f for the flag parser) may come before or after the id.
  std::vector<char*> args(argv, argv + argc);
  for (size_t i = 3; i < args.size(); ++i) {
    if (std::string(args[i]) == "-f") args[i] = const_cast<char*>("--f");
  }
  if (args.size() >= 5 && std::string(args[3]) == "--f" && args[4][0] != '-') {
    std::swap(args[3], args[4]);
  }
  const std::string id_text = Positional(argc, args.data());
  ParseVerbFlags(flags, argc, args.data(), !id_text.empty());
  const int64_t id = ParseId(id_text, "trial");
  auto client = Connect(address);
  while (true) {
    auto slice = client->TrialLogs(id, offset);
    if (!slice.ok()) throw Error(slice.status());
    std::cout << slice->data << std::flush;
    offset = slice->next_offset;
    if (!slice->data.empty()) continue;
    if (!follow || IsFinalState(slice->state)) break;
    if (slice->state == "stopped") {
      std::cerr << "maestro trial logs: trial " << id
                << " is stopped (by its searcher; it runs again only if promoted)" << std::endl;
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return 0;
}

int EventList(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  int64_t from = 0, experiment = 0;
  bool json = false;
  FlagParser flags(
      "maestro event list",
      "The coordinator's append-only event log: experiments created and canceled,\n"
      "trials assigned / running / adopted / restarting (with the cause) / completed /\n"
      "failed, workers registered and lost.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("from", &from, "first event seq");
  flags.Add("experiment", &experiment, "only this experiment's events (0: all)");
  flags.Add("json", &json, "print JSON (one object per line)");
  ParseVerbFlags(flags, argc, argv, false);
  auto events = Connect(address)->ListEvents(from, experiment);
  if (!events.ok()) throw Error(events.status());
  for (const Json& e : *events) {
    if (json) {
      std::cout << e.Dump() << "\n";
      continue;
    }
    std::cout << std::setw(6) << e.Find("seq")->as_int() << "  " << std::setw(22) << std::left
              << e.Find("kind")->as_string() << std::right;
    for (const auto& [key, value] : e.as_object()) {
      if (key == "seq" || key == "kind" || key == "time_ms") continue;
      std::cout << " " << key << "=" << Cell(value);
    }
    std::cout << "\n";
  }
  return 0;
}

int WorkerList(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  bool json = false;
  FlagParser flags("maestro worker list",
                   "The workers the coordinator knows: alive (heartbeating), expected (holding\n"
                   "trials, not yet registered with a restarted coordinator) or lost; their\n"
                   "slots, what runs on them, their build.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("json", &json, "print JSON (one object per line)");
  ParseVerbFlags(flags, argc, argv, false);
  auto workers = Connect(address)->ListWorkers();
  if (!workers.ok()) throw Error(workers.status());
  std::vector<std::vector<std::string>> rows;
  for (const Json& w : *workers) {
    if (json) {
      std::cout << w.Dump() << "\n";
      continue;
    }
    std::string running;
    for (const Json& r : w.Find("running")->as_array()) {
      // Appended piece by piece: GCC 12 misreads `"" + std::string&&` here (-Wrestrict).
      if (!running.empty()) running += ' ';
      running += std::to_string(r.Find("trial")->as_int());
      running += '/';
      running += std::to_string(r.Find("attempt")->as_int());
    }
    const Json* ago = w.Find("last_heartbeat_ms_ago");
    rows.push_back({w.Find("id")->as_string(), w.Find("state")->as_string(),
                    std::to_string(w.Find("slots_used")->as_int()) + "/" +
                        std::to_string(w.Find("slots")->as_int()),
                    std::to_string(w.Find("cpu_cores")->as_int()),
                    std::to_string(w.Find("memory_mb")->as_int()),
                    ago && ago->is_int() ? std::to_string(ago->as_int()) + " ms" : "-",
                    running.empty() ? "-" : running, w.Find("build")->as_string()});
  }
  if (!json) {
    PrintTable(
        {"worker", "state", "slots", "cores", "memory MB", "heartbeat", "trial/attempt", "build"},
        rows, "table");
  }
  return 0;
}

int DatasetRegister(int argc, char** argv) {
  std::string address = "127.0.0.1:7071", path, service, served_as;
  FlagParser flags("maestro dataset register NAME",
                   "Registers a dataset under NAME (what experiment files name): a folder of\n"
                   "ingested splits (`maestro data ingest`; each split's manifest is read for\n"
                   "its content hash) and/or a data service serving it (trainers then stream\n"
                   "from the service). Registering a name again replaces it.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("path", &path, "folder of ingested splits (<path>/<split>/manifest.json)");
  flags.Add("service", &service, "maestro-data serving it, host:port");
  flags.Add("served-as", &served_as, "its name on the service (default: NAME)");
  const std::string name = Positional(argc, argv);
  ParseVerbFlags(flags, argc, argv, !name.empty());
  if (name.empty()) throw Error(InvalidArgumentError("a dataset NAME is required"));
  if (path.empty() && service.empty()) {
    throw Error(InvalidArgumentError("give --path DIR (ingested shards) and/or --service ADDR"));
  }
  Json::Object dataset, splits;
  if (!path.empty()) {
    char resolved[PATH_MAX];
    if (realpath(path.c_str(), resolved) == nullptr) {
      throw Error(NotFoundError("--path: " + path + " does not exist"));
    }
    path = resolved;
    dataset["path"] = Json(path);
    auto entries = ListDirectory(path);
    if (!entries.ok()) throw Error(entries.status());
    for (const std::string& split : *entries) {
      auto text = ReadFile(path + "/" + split + "/manifest.json");
      if (!text.ok()) continue;
      auto manifest = Json::Parse(*text);
      if (!manifest.ok()) throw Error(manifest.status().WithContext(split + "/manifest.json"));
      splits[split] = Json(Json::Object{{"content_hash", *manifest->Find("content_hash")},
                                        {"count", *manifest->Find("count")}});
    }
    if (splits.empty()) {
      throw Error(NotFoundError(
          "--path: " + path + " has no split folders with a manifest.json (maestro data ingest)"));
    }
  }
  if (!service.empty()) {
    // The coordinator asks the service for its splits (and checks them against the folder's).
    dataset["service"] = Json(service);
    dataset["served_as"] = Json(served_as.empty() ? name : served_as);
  }
  if (!splits.empty()) dataset["splits"] = Json(splits);
  auto client = Connect(address);
  if (Status s = client->RegisterDataset(name, Json(dataset)); !s.ok()) throw Error(s);
  // What the coordinator stored (a service's splits are its answer).
  auto datasets = client->ListDatasets();
  if (!datasets.ok()) throw Error(datasets.status());
  for (const Json& d : *datasets) {
    if (d.Find("name")->as_string() == name) splits = d.Find("splits")->as_object();
  }
  std::cout << "registered dataset " << name << " (" << splits.size() << " splits";
  for (const auto& [split, info] : splits) {
    std::cout << ", " << split << ": " << info.Find("count")->as_int() << " samples";
  }
  std::cout << ") " << (service.empty() ? "at " + path : "served by " + service) << "\n";
  return 0;
}

int DatasetList(int argc, char** argv) {
  std::string address = "127.0.0.1:7071";
  bool json = false;
  FlagParser flags("maestro dataset list",
                   "The registered datasets: where they are read from, their splits.");
  AddCoordinatorFlags(flags, &address);
  flags.Add("json", &json, "print JSON (one object per line)");
  ParseVerbFlags(flags, argc, argv, false);
  auto datasets = Connect(address)->ListDatasets();
  if (!datasets.ok()) throw Error(datasets.status());
  std::vector<std::vector<std::string>> rows;
  for (const Json& d : *datasets) {
    if (json) {
      std::cout << d.Dump() << "\n";
      continue;
    }
    std::string splits;
    for (const auto& [split, info] : d.Find("splits")->as_object()) {
      splits += (splits.empty() ? "" : " ") + split + ":" +
                std::to_string(info.Find("count")->as_int()) + ":" +
                info.Find("content_hash")->as_string().substr(0, 12);
    }
    const Json* service = d.Find("service");
    const Json* path = d.Find("path");
    rows.push_back({d.Find("name")->as_string(),
                    service ? "service " + service->as_string() : "path " + path->as_string(),
                    splits});
  }
  if (!json) PrintTable({"dataset", "read from", "split:count:content"}, rows, "table");
  return 0;
}

}  // namespace maestro::tools
