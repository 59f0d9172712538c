#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "maestro/checkpoint/checkpoint_dir.h"
#include "maestro/engine/adamw.h"
#include "maestro/shared/train_config.h"
#include "maestro/engine/schedule.h"
#include "maestro/shared/file_util.h"

namespace maestro::engine {
namespace {

// std::filesystem is avoided in programs linked with LibTorch (shared/file_util.h).
std::string TempPath(const std::string& name) {
  return "/tmp/maestro_" + name + "_" + std::to_string(::getpid());
}

// util/lr_sched.py's adjust_learning_rate, written out separately.
double Official(double lr, double min_lr, double warmup, double epochs, double epoch) {
  if (epoch < warmup) return lr * epoch / warmup;
  return min_lr +
         (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * (epoch - warmup) / (epochs - warmup)));
}

TEST(ScheduleTest, MatchesTheOfficialFormulaAtItsLandmarks) {
  const double lr = 1.5e-4 * 4096 / 256, min_lr = 1e-6, warmup = 40, epochs = 800;
  const int64_t steps_per_epoch = 312;
  struct Point {
    double epoch, expected;
  } points[] = {
      {0.0, 0.0},                               // warmup start
      {20.0, lr / 2},                           // mid-warmup
      {40.0, lr},                               // warmup end: the peak
      {420.0, min_lr + (lr - min_lr) * 0.5},    // mid-cosine
      {800.0 - 1.0 / steps_per_epoch, min_lr},  // the last step, within rounding
  };
  for (const auto& p : points) {
    double got = ScheduledLearningRate(lr, min_lr, warmup, epochs, p.epoch);
    EXPECT_DOUBLE_EQ(got, Official(lr, min_lr, warmup, epochs, p.epoch)) << p.epoch;
    EXPECT_NEAR(got, p.expected, 1e-9) << p.epoch;
  }
  // Per iteration: step 3 of epoch 5 during warmup uses the fractional epoch.
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(lr, min_lr, warmup, epochs, 5.0 + 3.0 / steps_per_epoch),
                   lr * (5.0 + 3.0 / steps_per_epoch) / warmup);
}

TEST(AdamWTest, OfficialWeightDecayGrouping) {
  auto w = torch::zeros({4, 4}, torch::requires_grad());
  auto b = torch::zeros({4}, torch::requires_grad());
  auto cls = torch::zeros({1, 1, 4}, torch::requires_grad());
  auto fixed = torch::zeros({1, 5, 4});
  EXPECT_FALSE(SkipsWeightDecay("blocks.0.attn.qkv.weight", w));
  EXPECT_TRUE(SkipsWeightDecay("blocks.0.attn.qkv.bias", b));
  EXPECT_TRUE(SkipsWeightDecay("norm.weight", b));   // 1-D
  EXPECT_FALSE(SkipsWeightDecay("cls_token", cls));  // 3-D: decayed, as in the official code
  auto groups =
      WeightDecayGroups({{"w", w}, {"b", b}, {"cls_token", cls}, {"pos_embed", fixed}}, 0.05);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].params.size(), 1u);  // no decay: b
  EXPECT_EQ(groups[0].weight_decay, 0.0);
  EXPECT_EQ(groups[1].params.size(), 2u);  // decay: w, cls_token; pos_embed (no grad) is left out
  EXPECT_EQ(groups[1].weight_decay, 0.05);
  AdamW optimizer(groups, {});
  EXPECT_EQ(optimizer.StateDict().count("pos_embed.step"), 0u);
  EXPECT_EQ(optimizer.StateDict().count("w.exp_avg"), 1u);
}

TEST(ConfigTest, UnknownKeysAndWrongTypesNameTheKey) {
  auto bad_key = LoadTrainConfig("", {"optim.warmup_epoch=3"});
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.status().message().find("optim.warmup_epoch"), std::string::npos);
  auto bad_type = LoadTrainConfig("", {"optim.batch_size=big"});
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find("optim.batch_size"), std::string::npos);
  EXPECT_NE(bad_type.status().message().find("integer"), std::string::npos);
  auto bad_preset = LoadTrainConfig("", {"model.preset=vit_giant"});
  ASSERT_FALSE(bad_preset.ok());
  EXPECT_NE(bad_preset.status().message().find("model.preset"), std::string::npos);
  auto bad_value = LoadTrainConfig("", {"optim.warmup_epochs=9", "optim.epochs=5"});
  EXPECT_FALSE(bad_value.ok());
}

TEST(ConfigTest, YamlFileOverridesAndRoundTrip) {
  const std::string dir = TempPath("config");
  ASSERT_TRUE(MakeDirectories(dir).ok());
  const std::string path = dir + "/run.yaml";
  std::ofstream(path)
      << "# a run\nmodel:\n  preset: mae_vit_tiny_fmnist\n  mask_ratio: 0.6\n"
         "optim:\n  batch_size: 32\n  accum_iter: 2\n  blr: 1.0e-3\n  betas: [0.9, 0.999]\n"
         "run:\n  output_dir: \"out dir\"\n";
  auto config = LoadTrainConfig(path, {"optim.epochs=3", "model.norm_pix_loss=true"});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->model.mask_ratio, 0.6);
  EXPECT_TRUE(config->model.norm_pix_loss);
  EXPECT_EQ(config->optim.batch_size, 32);
  EXPECT_EQ(config->optim.epochs, 3);
  EXPECT_EQ(config->optim.beta2, 0.999);
  EXPECT_EQ(config->run.output_dir, "out dir");
  EXPECT_EQ(config->global_batch(2), 128);
  EXPECT_DOUBLE_EQ(config->peak_lr(2), 1.0e-3 * 128 / 256);
  // The saved config reads back to the same result hash.
  auto again = ParseTrainConfig(config->ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->ResultHash(), config->ResultHash());
  // Paths and cadence do not change the hash; the mask ratio does.
  auto moved = LoadTrainConfig(
      path, {"optim.epochs=3", "model.norm_pix_loss=true", "run.output_dir=elsewhere",
             "checkpoint.interval_steps=7", "run.threads=1"});
  EXPECT_EQ(moved->ResultHash(), config->ResultHash());
  // max_steps only stops a run early: extending a run must be able to resume it (a bug the
  // GPU run found: 60 steps, then --resume auto with max_steps 100 was refused).
  auto longer =
      LoadTrainConfig(path, {"optim.epochs=3", "model.norm_pix_loss=true", "optim.max_steps=100"});
  EXPECT_EQ(longer->ResultHash(), config->ResultHash());
  auto changed =
      LoadTrainConfig(path, {"optim.epochs=3", "model.norm_pix_loss=true", "model.mask_ratio=0.5"});
  EXPECT_NE(changed->ResultHash(), config->ResultHash());
  ASSERT_TRUE(RemoveTree(dir).ok());
}

TEST(ConfigTest, JobDefaultsFollowThePaperTables) {
  auto ft =
      LoadTrainConfig("", {"classify.pretrained=none", "classify.num_classes=10"}, "finetune");
  ASSERT_TRUE(ft.ok()) << ft.status().ToString();
  // Table 9: AdamW (0.9, 0.999), blr 1e-3, wd 0.05, layer decay 0.75, RandAugment (9, 0.5),
  // label smoothing 0.1, mixup 0.8, cutmix 1.0, drop path 0.1; random erasing 0.25 and the
  // 0.08 crop scale of the official transform; global pooling.
  EXPECT_EQ(ft->optim.optimizer, "adamw");
  EXPECT_EQ(ft->optim.beta2, 0.999);
  EXPECT_EQ(ft->optim.blr, 1e-3);
  EXPECT_EQ(ft->optim.weight_decay, 0.05);
  EXPECT_EQ(ft->classify.layer_decay, 0.75);
  EXPECT_EQ(ft->classify.randaug_ops, 2);
  EXPECT_EQ(ft->classify.randaug_magnitude, 9);
  EXPECT_EQ(ft->classify.randaug_magnitude_std, 0.5);
  EXPECT_EQ(ft->classify.label_smoothing, 0.1);
  EXPECT_EQ(ft->classify.mixup, 0.8);
  EXPECT_EQ(ft->classify.cutmix, 1.0);
  EXPECT_EQ(ft->classify.drop_path, 0.1);
  EXPECT_EQ(ft->classify.reprob, 0.25);
  EXPECT_EQ(ft->data.crop_scale_min, 0.08);
  EXPECT_TRUE(ft->classify.global_pool);
  // Table 10: LARS, blr 0.1, wd 0, no mixup/cutmix/drop path/label smoothing; the cls token.
  auto lp =
      LoadTrainConfig("", {"classify.pretrained=none", "classify.num_classes=10"}, "linprobe");
  ASSERT_TRUE(lp.ok()) << lp.status().ToString();
  EXPECT_EQ(lp->optim.optimizer, "lars");
  EXPECT_EQ(lp->optim.blr, 0.1);
  EXPECT_EQ(lp->optim.weight_decay, 0);
  EXPECT_EQ(lp->classify.mixup + lp->classify.cutmix + lp->classify.drop_path +
                lp->classify.label_smoothing + lp->classify.reprob,
            0);
  EXPECT_EQ(lp->classify.randaug_ops, 0);
  EXPECT_FALSE(lp->classify.global_pool);
  EXPECT_EQ(lp->classify.tune_blocks, 0);
  // The job is part of the saved config and reads back only as the same job.
  auto again = ParseTrainConfig(lp->ToJson(), "linprobe");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->ResultHash(), lp->ResultHash());
  EXPECT_FALSE(ParseTrainConfig(lp->ToJson(), "finetune").ok());
  EXPECT_NE(lp->ResultHash(), ft->ResultHash());
  // The pretrained path is provenance (recorded with its hash), not part of the result hash;
  // whether there is one is.
  auto moved =
      LoadTrainConfig("", {"classify.pretrained=/a/b", "classify.num_classes=10"}, "finetune");
  auto other =
      LoadTrainConfig("", {"classify.pretrained=/c/d", "classify.num_classes=10"}, "finetune");
  EXPECT_EQ(moved->ResultHash(), other->ResultHash());
  EXPECT_NE(moved->ResultHash(), ft->ResultHash());
}

TEST(ConfigTest, ClassificationErrorsNameTheKey) {
  auto message = [](const std::vector<std::string>& overrides, const std::string& job) {
    auto config = LoadTrainConfig("", overrides, job);
    return config.ok() ? std::string("ok") : config.status().message();
  };
  EXPECT_NE(message({"classify.pretrained=none"}, "finetune").find("classify.num_classes"),
            std::string::npos);
  EXPECT_NE(message({"classify.num_classes=10"}, "finetune").find("classify.pretrained"),
            std::string::npos);
  EXPECT_NE(
      message({"classify.pretrained=none", "classify.num_classes=10", "classify.tune_blocks=2"},
              "linprobe")
          .find("classify.tune_blocks"),
      std::string::npos);
  EXPECT_NE(
      message({"classify.pretrained=none", "classify.num_classes=10", "classify.tune_blocks=9"},
              "finetune")
          .find("classify.tune_blocks"),
      std::string::npos);
  EXPECT_NE(message({"classify.pretrained=none", "classify.num_classes=10", "optim.batch_size=33"},
                    "finetune")
                .find("even"),
            std::string::npos);
  // A pretraining config has no classify section.
  EXPECT_NE(message({"classify.num_classes=10"}, "pretrain").find("classify"), std::string::npos);
  EXPECT_NE(message({}, "distill").find("unknown job"), std::string::npos);
}

class CheckpointDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = TempPath(std::string("ckpt_") +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(RemoveTree(root_).ok());
    storage_ = std::move(checkpoint::OpenStorage("file://" + root_).value());
    ASSERT_TRUE(storage_->EnsureWritable().ok());
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(root_).ok()); }

  void Write(int64_t step, const std::string& payload) {
    auto writer = checkpoint::CheckpointWriter::Begin(*storage_, step, 1);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->WriteFile("model.bin", payload, 0).ok());
    ASSERT_TRUE(writer->Commit().ok());
  }

  std::string root_;
  std::unique_ptr<checkpoint::CheckpointStorage> storage_;
};

TEST_F(CheckpointDirTest, FlippedByteFallsBackToThePreviousCheckpoint) {
  Write(10, "first checkpoint");
  Write(20, "second checkpoint");
  std::vector<std::string> skipped;
  auto latest = checkpoint::FindLatestValid(*storage_, &skipped);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->manifest.step, 20);
  EXPECT_TRUE(skipped.empty());
  // Flip one byte of the newest.
  const std::string file = root_ + "/" + checkpoint::CheckpointName(20) + "/model.bin";
  std::string bytes = *ReadFile(file);
  bytes[3] ^= 0x01;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  latest = checkpoint::FindLatestValid(*storage_, &skipped);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->manifest.step, 10);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("sha256"), std::string::npos) << skipped[0];
}

TEST_F(CheckpointDirTest, TruncatedFileFallsBackToThePreviousCheckpoint) {
  Write(10, "first checkpoint");
  Write(20, "second checkpoint");
  ASSERT_EQ(::truncate((root_ + "/" + checkpoint::CheckpointName(20) + "/model.bin").c_str(), 4),
            0);
  std::vector<std::string> skipped;
  auto latest = checkpoint::FindLatestValid(*storage_, &skipped);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->manifest.step, 10);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("bytes"), std::string::npos) << skipped[0];
}

TEST_F(CheckpointDirTest, RetentionKeepsTheNewest) {
  for (int64_t step : {5, 10, 15, 20}) Write(step, std::to_string(step) + " payload");
  ASSERT_TRUE(checkpoint::ApplyRetention(*storage_, 2).ok());
  auto names = *storage_->List();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{checkpoint::CheckpointName(15),
                                             checkpoint::CheckpointName(20)}));
}

TEST_F(CheckpointDirTest, CommitNeedsEveryRank) {
  auto writer = checkpoint::CheckpointWriter::Begin(*storage_, 7, 2);
  ASSERT_TRUE(WriteFileAtomic(writer->PathFor("rank0.bin"), "a").ok());
  ASSERT_TRUE(writer->AddFile("rank0.bin", 0).ok());
  auto status = writer->Commit();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("rank(s) 1"), std::string::npos);
  EXPECT_TRUE(storage_->List()->empty());  // nothing half-committed is visible
  ASSERT_TRUE(WriteFileAtomic(writer->PathFor("rank1.bin"), "b").ok());
  ASSERT_TRUE(writer->AddFile("rank1.bin", 1).ok());
  ASSERT_TRUE(writer->Commit().ok());
  EXPECT_EQ(checkpoint::VerifyCheckpoint(root_ + "/" + checkpoint::CheckpointName(7))->files.size(),
            2u);
}

TEST(CheckpointStorageTest, UnusableLocationsFailClearly) {
  const std::string file = TempPath("plain_file");
  std::ofstream(file) << "not a folder";
  auto storage = checkpoint::OpenStorage(file + "/checkpoints");
  ASSERT_TRUE(storage.ok());
  auto status = (*storage)->EnsureWritable();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("cannot be created"), std::string::npos) << status.ToString();
  ::unlink(file.c_str());
  auto s3 = checkpoint::OpenStorage("s3://bucket/run");
  ASSERT_FALSE(s3.ok());
  EXPECT_NE(s3.status().message().find("s3"), std::string::npos);
}

}  // namespace
}  // namespace maestro::engine
