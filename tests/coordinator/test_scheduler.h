// What the scheduler tests share: a Scheduler over a real RocksDB in a test folder, on a
// simulated clock, and the registered dataset its experiments name.
#pragma once

#include <memory>
#include <string>

#include "maestro/coordinator/scheduler.h"
#include "maestro/coordinator/store.h"
#include "maestro/shared/clock.h"
#include "maestro/shared/json.h"
#include "maestro/shared/path_roots.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

// Opens (or reopens) the store under `dir`/db; trials write under `dir`/runs, and `dir` is the
// one data root. `options` supplies everything else (timings); its paths and clock are set.
inline Result<std::unique_ptr<Scheduler>> OpenTestScheduler(const std::string& dir, Clock* clock,
                                                            SchedulerOptions options = {}) {
  MAESTRO_ASSIGN_OR_RETURN(auto store, Store::Open(dir + "/db"));
  MAESTRO_ASSIGN_OR_RETURN(options.data_roots, PathRoots::Make({dir}, "--data-root", false));
  options.runs_dir = dir + "/runs";
  options.clock = clock;
  return Scheduler::Open(std::move(store), options);
}

// A dataset record under `dir`/data: one train split of 10 images.
inline Json TestDataset(const std::string& dir) {
  return Json(Json::Object{
      {"path", dir + "/data"},
      {"splits",
       Json(Json::Object{{"train", Json(Json::Object{{"content_hash", "abc"}, {"count", 10}})}})}});
}

}  // namespace maestro::coordinator
