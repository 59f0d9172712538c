// Experiment files, search methods and trial identities (coordinator/experiment.h,
// searcher.h): grids expand in a fixed order, random draws are reproducible and extendable,
// identities ignore what does not change a result and are kept when a grid grows, and bad
// files are refused with the offending key named.
#include "maestro/coordinator/experiment.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <set>

#include "maestro/coordinator/searcher.h"
#include "maestro/shared/config_tree.h"

namespace maestro::coordinator {
namespace {

ExperimentSpec Parse(const std::string& yaml) {
  auto tree = ParseConfigText(yaml, "test");
  EXPECT_TRUE(tree.ok()) << tree.status().ToString();
  auto spec = ParseExperiment(*tree);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : ExperimentSpec{};
}

Status ParseError(const std::string& yaml) {
  auto tree = ParseConfigText(yaml, "test");
  if (!tree.ok()) return tree.status();
  auto spec = ParseExperiment(*tree);
  if (!spec.ok()) return spec.status();
  auto search = MakeSearchMethod(*spec);
  if (!search.ok()) return search.status();
  for (const auto& trial : (*search)->Start()) {
    auto identity = TrialIdentity(*spec, trial.hparams);
    if (!identity.ok()) return identity.status();
  }
  return OkStatus();
}

std::vector<TrialRequest> Trials(const ExperimentSpec& spec) {
  auto search = MakeSearchMethod(spec);
  EXPECT_TRUE(search.ok()) << search.status().ToString();
  return search.ok() ? (*search)->Start() : std::vector<TrialRequest>{};
}

std::vector<std::string> Identities(const ExperimentSpec& spec) {
  std::vector<std::string> out;
  for (const auto& trial : Trials(spec)) {
    auto identity = TrialIdentity(spec, trial.hparams);
    EXPECT_TRUE(identity.ok()) << identity.status().ToString();
    out.push_back(identity.ok() ? *identity : "");
  }
  return out;
}

constexpr const char* kGrid = R"(
name: ablation
kind: pretrain
dataset: fmnist
config: {optim: {epochs: 2, batch_size: 64}, run: {output_dir: runs/a}}
hyperparameters:
  model.mask_ratio: [0.5, 0.75, 0.9]
  model.decoder_depth: {type: categorical, vals: [1, 2]}
  optim.blr: {type: log, base: 10, minval: -4, maxval: -3, count: 2}
  run.seed: 3
searcher: {name: grid}
)";

TEST(ExperimentTest, AGridIsTheProductInSortedKeyOrderLastKeyFastest) {
  const ExperimentSpec spec = Parse(kGrid);
  const auto trials = Trials(spec);
  ASSERT_EQ(trials.size(), 12u);  // 2 x 3 x 2 x 1
  // Sorted keys: model.decoder_depth, model.mask_ratio, optim.blr, run.seed.
  EXPECT_EQ(trials[0].hparams.Dump(),
            R"({"model.decoder_depth":1,"model.mask_ratio":0.5,"optim.blr":0.0001,"run.seed":3})");
  EXPECT_EQ(trials[1].hparams.Find("optim.blr")->as_double(), 0.001);
  EXPECT_EQ(trials[2].hparams.Find("model.mask_ratio")->as_double(), 0.75);
  EXPECT_EQ(trials[11].hparams.Find("model.decoder_depth")->as_int(), 2);
  EXPECT_EQ(trials[11].hparams.Find("model.mask_ratio")->as_double(), 0.9);
  const auto ids = Identities(spec);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 12u) << "identities differ";
  // The trial's config is the base with its values at the dotted keys.
  const auto config = TrialConfig(spec, trials[5].hparams);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->Find("model")->Find("decoder_depth")->as_int(), 1);
  EXPECT_EQ(config->Find("optim")->Find("batch_size")->as_int(), 64);
}

TEST(ExperimentTest, IdentitiesIgnorePathsLoggingAndCheckpointPolicyButNotTheResult) {
  const auto base = Identities(Parse(kGrid));
  std::string moved = kGrid;
  moved.replace(moved.find("runs/a"), 6, "elsewhere/b");
  moved += "checkpoint: {interval_steps: 7, keep_last: 1}\n";
  moved.replace(moved.find("batch_size: 64}"), 15, "batch_size: 64}, log: {interval_steps: 3}");
  EXPECT_EQ(Identities(Parse(moved)), base);
  std::string other_data = kGrid;
  other_data.replace(other_data.find("dataset: fmnist"), 15, "dataset: mnist");
  EXPECT_NE(Identities(Parse(other_data))[0], base[0]);
  std::string other_seed = kGrid;
  other_seed.replace(other_seed.find("run.seed: 3"), 11, "run.seed: 4");
  EXPECT_NE(Identities(Parse(other_seed))[0], base[0]);
}

TEST(ExperimentTest, ExtendingAGridKeepsTheIdentitiesOfItsCells) {
  const auto before = Identities(Parse(kGrid));
  std::string extended = kGrid;
  extended.replace(extended.find("[0.5, 0.75, 0.9]"), 16, "[0.5, 0.6, 0.75, 0.9]");
  const auto after = Identities(Parse(extended));
  ASSERT_EQ(after.size(), 16u);
  const std::set<std::string> grown(after.begin(), after.end());
  for (const auto& id : before) EXPECT_EQ(grown.count(id), 1u) << "a cell of the first grid";
}

TEST(ExperimentTest, RandomDrawsAreInRangeReproducibleAndExtendable) {
  const std::string yaml = R"(
name: r
kind: pretrain
dataset: fmnist
hyperparameters:
  model.decoder_depth: {type: int, minval: 1, maxval: 4}
  model.mask_ratio: {type: double, minval: 0.5, maxval: 0.9}
  optim.blr: {type: log, minval: -5, maxval: -3}
  model.norm_pix_loss: [true, false]
searcher: {name: random, max_trials: 40, seed: 3}
)";
  const auto a = Trials(Parse(yaml)), b = Trials(Parse(yaml));
  ASSERT_EQ(a.size(), 40u);
  std::set<int64_t> depths;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].hparams.Dump(), b[i].hparams.Dump());
    const int64_t depth = a[i].hparams.Find("model.decoder_depth")->as_int();
    depths.insert(depth);
    EXPECT_GE(depth, 1);
    EXPECT_LE(depth, 4);
    const double ratio = a[i].hparams.Find("model.mask_ratio")->as_double();
    EXPECT_TRUE(ratio >= 0.5 && ratio <= 0.9) << ratio;
    const double blr = a[i].hparams.Find("optim.blr")->as_double();
    EXPECT_TRUE(blr >= 1e-5 && blr <= 1e-3) << blr;
  }
  EXPECT_EQ(depths.size(), 4u) << "both bounds are drawn";
  std::string more = yaml;
  more.replace(more.find("max_trials: 40"), 14, "max_trials: 50");
  const auto c = Trials(Parse(more));
  ASSERT_EQ(c.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(c[i].hparams.Dump(), a[i].hparams.Dump());
  std::string other_seed = yaml;
  other_seed.replace(other_seed.find("seed: 3"), 7, "seed: 4");
  EXPECT_NE(Trials(Parse(other_seed))[0].hparams.Dump(), a[0].hparams.Dump());
}

TEST(ExperimentTest, APipelineIsIdentifiedWithItsEvaluations) {
  const std::string yaml = R"(
name: p
kind: pipeline
dataset: fmnist
hyperparameters: {model.mask_ratio: [0.5, 0.75]}
evaluations:
  - {kind: linprobe, config: {classify: {num_classes: 10}, optim: {epochs: 3}}}
)";
  const ExperimentSpec spec = Parse(yaml);
  EXPECT_EQ(spec.train_job(), "pretrain");
  const auto ids = Identities(spec);
  ASSERT_EQ(ids.size(), 2u);
  std::string longer = yaml;
  longer.replace(longer.find("epochs: 3"), 9, "epochs: 4");
  EXPECT_NE(Identities(Parse(longer))[0], ids[0]);
}

TEST(ExperimentTest, ABaseConfigPathIsReadRelativeToTheExperimentFile) {
  const std::string dir = "/tmp/maestro_experiment_" + std::to_string(::getpid());
  ASSERT_EQ(::system(("mkdir -p " + dir + "/configs").c_str()), 0);
  std::ofstream(dir + "/configs/base.yaml") << "optim: {epochs: 3}\nmodel: {mask_ratio: 0.6}\n";
  std::ofstream(dir + "/exp.yaml") << "name: f\nkind: pretrain\ndataset: fmnist\n"
                                      "config: configs/base.yaml\n";
  auto spec = LoadExperiment(dir + "/exp.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->config.Find("optim")->Find("epochs")->as_int(), 3);
  std::ofstream(dir + "/missing.yaml") << "name: f\nkind: pretrain\ndataset: fmnist\n"
                                          "config: configs/nope.yaml\n";
  auto missing = LoadExperiment(dir + "/missing.yaml");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("config"), std::string::npos);
  ASSERT_EQ(::system(("rm -rf " + dir).c_str()), 0);
}

TEST(ExperimentTest, TheCoordinatorsParserOpensNoFileARequestNames) {
  // What the coordinator parses: a config path is refused with the same answer whether the
  // file exists, is unreadable or is missing (no existence oracle), and nothing of it is quoted.
  for (const std::string path : {"/etc/shadow", "/etc/hostname", "/nonexistent/x.yaml"}) {
    Json tree(
        Json::Object{{"name", "f"}, {"kind", "pretrain"}, {"dataset", "fmnist"}, {"config", path}});
    auto spec = ParseExperiment(tree);
    ASSERT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_EQ(spec.status().message(),
              "config: '" + path +
                  "' names a file, and the coordinator reads no file a request names: send the "
                  "config's content (`maestro experiment create FILE` reads the files FILE names "
                  "and sends them inline)");
  }
  Json pipeline(Json::Object{
      {"name", "p"},
      {"kind", "pipeline"},
      {"dataset", "fmnist"},
      {"evaluations",
       Json(Json::Array{Json(Json::Object{{"kind", "linprobe"}, {"config", "/etc/passwd"}})})}});
  auto spec = ParseExperiment(pipeline);
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(spec.status().message().rfind("evaluations[0].config: '/etc/passwd' names a file", 0),
            0u)
      << spec.status().message();
}

TEST(ExperimentTest, BadFilesNameTheOffendingKey) {
  const std::string head = "name: x\nkind: pretrain\ndataset: fmnist\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"name: [unclosed\n", "test"},  // malformed YAML: the source and position
      {head + "searcher: {nmae: grid}\n", "unknown key 'searcher.nmae'"},
      {head + "colour: blue\n", "unknown key 'colour'"},
      {"name: x\nkind: sweep\ndataset: fmnist\n", "kind: 'sweep' is not one of"},
      {"name: x\nkind: pretrain\n", "dataset: required"},
      {head + "hyperparameters: {model.mask_ratio: []}\n", "model.mask_ratio: no values"},
      {head + "hyperparameters: {model.mask_ratio: {type: double, minval: 0.5, maxval: 0.9}}\n",
       "model.mask_ratio: a grid needs `count`"},
      {head + "hyperparameters: {model.mask_ratio: {type: uniform, vals: [1]}}\n",
       "model.mask_ratio.type: 'uniform' is not one of"},
      {head + "hyperparameters: {model.mask_ratio: {type: double, minval: 0.9, maxval: 0.5, "
              "count: 2}}\n",
       "minval exceeds maxval"},
      {head + "hyperparameters: {model.mask_ratio: {type: categorical, vals: [0.5], cnt: 1}}\n",
       "model.mask_ratio.cnt: unknown key"},
      {head + "hyperparameters: {model.mask_ratioo: [0.5]}\n", "unknown key 'model.mask_ratioo'"},
      {head + "hyperparameters: {model.mask_ratio: [hello]}\n", "model.mask_ratio"},
      {head + "searcher: {name: random}\n", "searcher.max_trials"},
      {head + "searcher: {name: bayes}\n", "searcher.name: 'bayes'"},
      {head + "resources: {slots_per_trial: 0}\n", "resources.slots_per_trial"},
      {head + "max_restarts: -1\n", "max_restarts"},
      {head + "evaluations: [{kind: linprobe}]\n", "evaluations: only a pipeline"},
      {"name: x\nkind: pipeline\ndataset: fmnist\n", "evaluations: a pipeline needs"},
      {"name: x\nkind: pipeline\ndataset: fmnist\nevaluations: [{kind: pretrain}]\n",
       "evaluations[0].kind"},
  };
  for (const auto& [yaml, expected] : cases) {
    const Status status = ParseError(yaml);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << yaml << status.ToString();
    EXPECT_NE(status.message().find(expected), std::string::npos)
        << "expected '" << expected << "' in: " << status.ToString();
  }
  EXPECT_TRUE(ParseError(head).ok()) << ParseError(head).ToString();
}

// Several processes on each of several nodes: GPU trials only on worker daemons (a valid
// experiment, which the Slurm backend runs with mpirun over its allocation).
TEST(ExperimentTest, SeveralCpuProcessesOnSeveralNodesAreRefusedOnWorkers) {
  const std::string head = "name: x\nkind: pretrain\ndataset: fmnist\n";
  auto shape = [](const std::string& yaml) {
    auto tree = ParseConfigText(yaml, "test");
    EXPECT_TRUE(tree.ok());
    auto spec = ParseExperiment(*tree);
    EXPECT_TRUE(spec.ok()) << yaml << spec.status().ToString();
    return spec.ok() ? CheckWorkerShape(*spec) : spec.status();
  };
  for (const std::string& cpu :
       {head,
        head + "config: {run: {device: cuda}}\nhyperparameters: {run.device: [cuda, cpu]}\n"}) {
    const Status status = shape(cpu + "resources: {slots_per_trial: 2, nodes: 2}\n");
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << cpu;
    EXPECT_NE(status.message().find("resources.nodes: a multi-node"), std::string::npos)
        << status.ToString();
  }
  for (const std::string& gpu :
       {head + "config: {run: {device: cuda}}\n", head + "hyperparameters: {run.device: cuda}\n"}) {
    const std::string yaml = gpu + "resources: {slots_per_trial: 2, nodes: 2}\n";
    EXPECT_TRUE(shape(yaml).ok()) << yaml;
  }
  EXPECT_TRUE(shape(head + "resources: {slots_per_trial: 1, nodes: 2}\n").ok());
}

TEST(ExperimentTest, AHugeGridIsRefusedNotExpanded) {
  const std::string yaml =
      "name: x\nkind: pretrain\ndataset: fmnist\nhyperparameters:\n"
      "  a.x: {type: int, minval: 0, maxval: 999, count: 1000}\n"
      "  a.y: {type: int, minval: 0, maxval: 999, count: 1000}\n"
      "  a.z: {type: int, minval: 0, maxval: 999, count: 1000}\n";
  auto search = MakeSearchMethod(Parse(yaml));
  ASSERT_FALSE(search.ok());
  EXPECT_NE(search.status().message().find("more than 100000 cells"), std::string::npos);
}

}  // namespace
}  // namespace maestro::coordinator
