// RocksDB shard storage on a real database on disk: Fashion-MNIST's test split ingested into
// shards reads back sample for sample; the content hash is a function of the content (a second
// ingest, and an interrupted one finished by a re-run, give the same); bad input is refused.
#include "maestro/dataloader/shards.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "maestro/dataloader/dataset.h"
#include "maestro/shared/file_util.h"

namespace maestro::dataloader {
namespace {

constexpr const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

class ShardsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = "/tmp/maestro_shards_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(RemoveTree(root_).ok());
    auto source = OpenFashionMnist(kFashionMnist, "test");
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    source_ = std::move(*source);
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(root_).ok()); }

  IngestOptions Options(const std::string& sub, int64_t shards = 3) {
    IngestOptions o;
    o.out_dir = root_ + "/" + sub;
    o.name = source_->identity().name;
    o.source = Json(Json::Object{{"format", "idx"}, {"split", "test"}});
    o.shards = shards;
    return o;
  }

  std::string root_;
  std::unique_ptr<Dataset> source_;
};

TEST_F(ShardsTest, EverySampleReadsBackAsIngested) {
  std::vector<int64_t> progress;
  auto manifest = IngestDataset(*source_, Options("a"), [&](int64_t shards, int64_t, int64_t) {
    progress.push_back(shards);
  });
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(manifest->count, 10000);
  EXPECT_EQ(manifest->num_classes, 10);
  ASSERT_EQ(manifest->shards.size(), 3u);
  EXPECT_EQ(manifest->shards[1].first, 3333);
  EXPECT_EQ(manifest->shards[2].count, 3334);
  EXPECT_EQ(progress, (std::vector<int64_t>{1, 2, 3}));
  auto shards = OpenShardDataset(root_ + "/a");
  ASSERT_TRUE(shards.ok()) << shards.status().ToString();
  EXPECT_EQ((*shards)->size(), 10000);
  EXPECT_EQ((*shards)->identity().content_hash, manifest->content_hash);
  for (int64_t i = 0; i < 10000; ++i) {
    auto want = source_->Get(i);
    auto got = (*shards)->Get(i);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->label, want->label) << i;
    ASSERT_EQ(got->index, i);
    ASSERT_EQ(got->height, 28);
    ASSERT_EQ(got->channels, 1);
    ASSERT_EQ(got->pixels, want->pixels) << i;
  }
  EXPECT_EQ((*shards)->Get(10000).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*shards)->Get(-1).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ShardsTest, ContentHashSurvivesAnInterruptedIngest) {
  auto first = IngestDataset(*source_, Options("a"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = IngestDataset(*source_, Options("b"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->content_hash, first->content_hash);
  // An ingest killed while writing shard 1: no manifest, shard 1 without its done-marker,
  // shard 2 absent. The re-run rebuilds what is missing and ends with the same hash.
  ASSERT_TRUE(RemoveTree(root_ + "/b/manifest.json").ok());
  ASSERT_TRUE(RemoveTree(root_ + "/b/shard-00001/ingest.json").ok());
  ASSERT_TRUE(RemoveTree(root_ + "/b/shard-00002").ok());
  EXPECT_EQ(OpenShardDataset(root_ + "/b").status().code(), StatusCode::kNotFound);
  auto resumed = IngestDataset(*source_, Options("b"));
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->content_hash, first->content_hash);
  auto shards = OpenShardDataset(root_ + "/b");
  ASSERT_TRUE(shards.ok()) << shards.status().ToString();
  EXPECT_EQ((*shards)->Get(9999)->pixels, source_->Get(9999)->pixels);
  // Another shard count is other content; a finished folder refuses another ingest.
  auto four = IngestDataset(*source_, Options("c", 4));
  ASSERT_TRUE(four.ok());
  EXPECT_NE(four->content_hash, first->content_hash);
  auto clash = IngestDataset(*source_, Options("a", 4));
  EXPECT_EQ(clash.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(clash.status().message().find("another source or shard count"), std::string::npos);
}

TEST_F(ShardsTest, DamagedManifestsAndRecordsAreDataLoss) {
  ASSERT_TRUE(IngestDataset(*source_, Options("a", 2)).ok());
  auto text = ReadFile(root_ + "/a/manifest.json");
  ASSERT_TRUE(text.ok());
  std::string tampered = *text;
  const auto at = tampered.find("\"count\":5000");
  ASSERT_NE(at, std::string::npos);
  tampered.replace(at, 12, "\"count\":4999");
  ASSERT_TRUE(WriteFileAtomic(root_ + "/a/manifest.json", tampered).ok());
  auto opened = OpenShardDataset(root_ + "/a");
  EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(opened.status().message().find("content hash"), std::string::npos);
  EXPECT_EQ(DecodeRecord("not a record", 3).status().code(), StatusCode::kDataLoss);
  RawSample s;
  s.height = 2;
  s.width = 2;
  s.channels = 1;
  s.pixels = {1, 2, 3, 4};
  s.label = 7;
  std::string record = EncodeRecord(s);
  EXPECT_EQ(DecodeRecord(record, 0)->pixels, s.pixels);
  EXPECT_EQ(DecodeRecord(record.substr(0, record.size() - 1), 0).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(ShardKey(258), std::string("\0\0\0\0\0\0\x01\x02", 8));  // big-endian, sorts by index
}

}  // namespace
}  // namespace maestro::dataloader
