// A trial's placement written into a trainer config: whatever the config said about where to
// read and write is replaced, and the result is a config the trainer's own schema accepts.
#include "maestro/shared/trial_placement.h"

#include <gtest/gtest.h>

#include "maestro/shared/config_tree.h"
#include "maestro/shared/train_config.h"

namespace maestro {
namespace {

TrialPlacement Placement() {
  TrialPlacement p;
  p.output_dir = "/runs/trial-3/pretrain";
  p.checkpoint_dir = "/runs/trial-3/pretrain/checkpoints";
  p.data_path = "/data/fmnist";
  return p;
}

std::string StringAt(const Json& config, const char* key) {
  const Json* v = FindConfigValue(config, key);
  return v != nullptr && v->is_string() ? v->as_string() : "<absent>";
}

TEST(TrialPlacementTest, ReplacesWhatTheConfigSaidAboutWhere) {
  auto config =
      Json::Parse(R"({"data": {"source": "fashion-mnist", "path": "/etc", "service": "evil:1", )"
                  R"("dataset": "x", "num_workers": 2}, "run": {"output_dir": "/tmp/elsewhere", )"
                  R"("threads": 1}, "checkpoint": {"dir": "/tmp/c", "keep_last": 2}})");
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(ApplyPlacement(Placement(), *config).ok());
  EXPECT_EQ(StringAt(*config, "data.source"), "shards");
  EXPECT_EQ(StringAt(*config, "data.path"), "/data/fmnist");
  EXPECT_EQ(StringAt(*config, "data.service"), "<absent>");
  EXPECT_EQ(StringAt(*config, "data.dataset"), "<absent>");
  EXPECT_EQ(StringAt(*config, "run.output_dir"), "/runs/trial-3/pretrain");
  EXPECT_EQ(StringAt(*config, "checkpoint.dir"), "/runs/trial-3/pretrain/checkpoints");
  EXPECT_EQ(FindConfigValue(*config, "data.num_workers")->as_int(), 2) << "the rest is kept";
  EXPECT_EQ(FindConfigValue(*config, "checkpoint.keep_last")->as_int(), 2);
  auto parsed = engine::ParseTrainConfig(*config);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->run.output_dir, "/runs/trial-3/pretrain");
}

TEST(TrialPlacementTest, AServiceAndWeights) {
  TrialPlacement p = Placement();
  p.data_path.clear();
  p.data_service = "data-host:7072";
  p.data_dataset = "fmnist";
  p.pretrained = "/runs/trial-3/pretrain/checkpoints/step-000000000010";
  Json config(Json::Object{
      {"classify", Json(Json::Object{{"pretrained", "/etc/passwd"}, {"num_classes", 10}})}});
  ASSERT_TRUE(ApplyPlacement(p, config).ok());
  EXPECT_EQ(StringAt(config, "data.service"), "data-host:7072");
  EXPECT_EQ(StringAt(config, "data.dataset"), "fmnist");
  EXPECT_EQ(StringAt(config, "data.path"), "<absent>");
  EXPECT_EQ(StringAt(config, "classify.pretrained"), p.pretrained);
  // Stripping hands back the weights the config named and leaves no placed key.
  EXPECT_EQ(StripPlacement(config), p.pretrained);
  for (const char* key : PlacedConfigKeys()) EXPECT_EQ(FindConfigValue(config, key), nullptr);
  EXPECT_EQ(FindConfigValue(config, "classify.pretrained"), nullptr);
}

TEST(TrialPlacementTest, AnIncompletePlacementIsRefused) {
  Json config(Json::Object{});
  TrialPlacement p = Placement();
  p.data_path.clear();
  EXPECT_EQ(ApplyPlacement(p, config).code(), StatusCode::kInvalidArgument);
  p = Placement();
  p.output_dir.clear();
  EXPECT_EQ(ApplyPlacement(p, config).code(), StatusCode::kInvalidArgument);
  Json not_object(Json::Array{});
  EXPECT_EQ(ApplyPlacement(Placement(), not_object).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace maestro
