// Experiment files: one YAML file describes a sweep completely, in the spirit of
// Determined's experiment config.
//
//   name: mask-ratio x decoder-depth          # required
//   kind: pretrain                            # pretrain | finetune | linprobe | pipeline
//   dataset: fmnist                           # a registered dataset's name
//   config: ../configs/fmnist_pretrain.yaml   # the base trainer config: a path (relative to
//                                             # this file) or an inline mapping
//   hyperparameters:                          # dotted keys into the trainer config
//     model.mask_ratio: [0.5, 0.75, 0.9]      # a list: categorical
//     model.decoder_depth: {type: categorical, vals: [1, 8]}
//     optim.blr: {type: log, base: 10, minval: -4, maxval: -3, count: 2}
//     optim.epochs: 2                         # a scalar: const
//   searcher: {name: grid}                    # or {name: random, max_trials: 8, seed: 0}
//                                             # or {name: asha, max_trials: 27, seed: 0,
//                                             #     metric: top1, mode: max, unit: steps,
//                                             #     min_budget: 50, max_budget: 450,
//                                             #     reduction_factor: 3}   (asha.h)
//   resources: {slots_per_trial: 1, nodes: 1, cpu_cores: 2, memory_mb: 4096, priority: 0}
//   max_concurrent_trials: 2                  # 0: no limit
//   max_restarts: 3
//   checkpoint: {interval_steps: 100, keep_last: 2}
//   evaluations:                              # pipeline only: run per trial from its final
//     - {kind: linprobe, config: ../configs/fmnist_linprobe.yaml}   # checkpoint
//
// Hyperparameter types: const (val), int and double (minval, maxval, count), log (base,
// minval, maxval exponents, count), categorical (vals). A grid takes `count` evenly spaced
// values of int/double/log ranges; a random searcher samples them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::coordinator {

struct HyperParameter {
  std::string key;                           // dotted key into the trainer config
  std::string type;                          // const, int, double, log, categorical
  Json val;                                  // const
  double minval = 0, maxval = 0, base = 10;  // int, double, log (log: exponents of base)
  int64_t count = 0;                         // grid points of int / double / log; 0: unset
  std::vector<Json> vals;                    // categorical
};

struct SearcherSpec {
  std::string name = "grid";  // grid, random, asha
  int64_t max_trials = 0;     // random, asha: how many trials
  uint64_t seed = 0;          // random, asha: trial i's values depend on (seed, i, key) only
  // asha (asha.h): the metric trials report at each rung and which way is better, the unit of
  // the budgets, the first rung's and the last rung's budget, and the reduction factor.
  std::string metric;          // default: heldout_masked_loss (pretrain), top1 (classification)
  std::string mode;            // min | max; default: max for top1/top5, else min
  std::string unit = "steps";  // steps | epochs
  int64_t min_budget = 0, max_budget = 0;
  int64_t reduction_factor = 4;
};

struct Resources {
  int64_t slots_per_trial = 1;  // GPUs, or CPU slots (per node)
  int64_t nodes = 1;            // > 1: a gang over this many workers (torchrun-style ranks)
  int64_t cpu_cores = 0;        // 0: no requirement
  int64_t memory_mb = 0;        // 0: no requirement
  int64_t priority = 0;         // higher first; FIFO within a priority
};

struct EvaluationSpec {
  std::string kind;  // finetune, linprobe
  Json config;       // the trainer config tree (classify.pretrained is set per trial)
};

struct ExperimentSpec {
  std::string name, description, kind, dataset;
  Json config;                                  // the base trainer config tree
  std::vector<HyperParameter> hyperparameters;  // sorted by key
  SearcherSpec searcher;
  Resources resources;
  int64_t max_concurrent_trials = 0;
  int64_t max_restarts = 5;
  int64_t checkpoint_interval_steps = 0;  // 0: the config's
  int64_t checkpoint_keep_last = -1;      // -1: the config's
  std::vector<EvaluationSpec> evaluations;

  // The trainer job of the trials' first (or only) run.
  std::string train_job() const { return kind == "pipeline" ? "pretrain" : kind; }
};

// Parses an experiment tree whose trainer configs are inline mappings (what the coordinator
// receives and stores). Opens no file: a config given as a path is INVALID_ARGUMENT (the
// client reads it, LoadExperimentInlined). INVALID_ARGUMENT names the offending key (unknown
// keys included).
Result<ExperimentSpec> ParseExperiment(const Json& tree);
// What maestro's worker daemons cannot run (a backend check, made at submit by a coordinator
// with worker daemons): several CPU processes on each of several nodes. INVALID_ARGUMENT
// naming resources.nodes.
Status CheckWorkerShape(const ExperimentSpec& spec);
// The client's side. The file's tree with `config` and every evaluation's `config` read
// (relative to the file's folder) and inlined as mappings: what a client sends to the
// coordinator. Checked with ParseExperiment; NOT_FOUND for a file that does not exist.
Result<Json> LoadExperimentInlined(const std::string& path);
// LoadExperimentInlined, parsed.
Result<ExperimentSpec> LoadExperiment(const std::string& path);

}  // namespace maestro::coordinator
