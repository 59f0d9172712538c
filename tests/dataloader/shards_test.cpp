// RocksDB shard storage on a real database on disk: Fashion-MNIST's test split ingested into
// shards reads back sample for sample; the content hash is a function of the content (a second
// ingest, and an interrupted one finished by a re-run, give the same); bad input is refused.
// An ImageNet-layout folder of JPEG files (the Pillow fixtures of jpeg_fixture.py: 4:2:0,
// 4:4:4, progressive, grayscale, CMYK) reads back as Pillow decodes them; a PNG and an empty
// file are skipped and listed.
#include "maestro/dataloader/shards.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "fixture_util.h"
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

TEST_F(ShardsTest, ImageFolderJpegsReadBackAsPillowDecodesThem) {
  const auto fixture = maestro::testing::LoadFixture("jpeg_fixture.safetensors");
  const std::string src = root_ + "/src/train";
  // Two classes, listed out of order on purpose; labels follow the sorted folder names.
  const std::vector<std::pair<std::string, std::string>> files = {{"n02/b.JPEG", "q96_444"},
                                                                  {"n01/a.JPEG", "q90_420"},
                                                                  {"n01/c.JPEG", "progressive"},
                                                                  {"n02/a.JPEG", "gray"},
                                                                  {"n02/d.JPEG", "cmyk"}};
  ASSERT_TRUE(MakeDirectories(src + "/n01").ok());
  ASSERT_TRUE(MakeDirectories(src + "/n02").ok());
  for (const auto& [path, name] : files) {
    const auto& bytes = fixture.at(name + ".file");
    std::ofstream(src + "/" + path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), bytes.numel());
  }
  std::ofstream(src + "/n01/b.JPEG") << "\x89PNG\r\n\x1a\n not really";  // a broken PNG
  std::ofstream(src + "/n02/empty.JPEG").flush();
  auto source = OpenImageFolder(src);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), 7);
  IngestOptions options;
  options.out_dir = root_ + "/shards/train";
  options.name = "folder/train";
  options.source = Json(Json::Object{{"format", "imagefolder"}});
  options.shards = 2;
  auto manifest = IngestRecords(**source, options);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(manifest->count, 5);
  EXPECT_EQ(manifest->source_items, 7);
  EXPECT_EQ(manifest->classes, (std::vector<std::string>{"n01", "n02"}));
  ASSERT_EQ(manifest->skipped.size(), 2u);
  EXPECT_NE(manifest->skipped[0].find("n01/b.JPEG: PNG"), std::string::npos)
      << manifest->skipped[0];
  EXPECT_NE(manifest->skipped[1].find("n02/empty.JPEG"), std::string::npos);
  auto shards = OpenShardDataset(options.out_dir);
  ASSERT_TRUE(shards.ok()) << shards.status().ToString();
  // Sorted order: n01/a, n01/c (n01/b skipped), n02/a, n02/b, n02/d (n02/empty skipped).
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"q90_420", 0}, {"progressive", 0}, {"gray", 1}, {"q96_444", 1}, {"cmyk", 1}};
  for (int64_t i = 0; i < 5; ++i) {
    auto sample = (*shards)->Get(i);
    ASSERT_TRUE(sample.ok()) << sample.status().ToString();
    EXPECT_EQ(sample->label, expected[static_cast<size_t>(i)].second) << i;
    const auto& pillow = fixture.at(expected[static_cast<size_t>(i)].first + ".decoded");
    ASSERT_EQ(sample->channels, 3);
    auto ours =
        torch::from_blob(sample->pixels.data(), {sample->height, sample->width, 3}, torch::kUInt8);
    EXPECT_TRUE(torch::equal(ours, pillow)) << expected[static_cast<size_t>(i)].first;
  }
}

}  // namespace
}  // namespace maestro::dataloader
