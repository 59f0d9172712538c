#include "maestro/dataloader/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "maestro/dataloader/loader.h"
#include "maestro/dataloader/records.h"

namespace maestro::dataloader {
namespace {

TEST(SamplerTest, WorldSizesYieldTheSameGlobalSequence) {
  const int64_t n = 1000, global_batch = 24;  // divisible by 1, 2 and 3
  for (int64_t epoch : {0, 1, 7}) {
    std::vector<int64_t> reference;
    EpochSampler one(n, global_batch, 42);
    for (int64_t step = 0; step < one.steps_per_epoch(); ++step) {
      auto batch = one.RankBatch(epoch, step, 0, 1);
      reference.insert(reference.end(), batch.begin(), batch.end());
    }
    for (int64_t world : {2, 3}) {
      EpochSampler sampler(n, global_batch, 42);
      std::vector<int64_t> sequence;
      for (int64_t step = 0; step < sampler.steps_per_epoch(); ++step) {
        for (int64_t rank = 0; rank < world; ++rank) {
          auto part = sampler.RankBatch(epoch, step, rank, world);
          EXPECT_EQ(static_cast<int64_t>(part.size()), global_batch / world);
          sequence.insert(sequence.end(), part.begin(), part.end());
        }
      }
      EXPECT_EQ(sequence, reference) << "world " << world << " epoch " << epoch;
    }
  }
}

TEST(SamplerTest, EachIndexAtMostOncePerEpochAndEpochsDiffer) {
  EpochSampler sampler(1000, 32, 7);
  EXPECT_EQ(sampler.steps_per_epoch(), 31);  // the partial last batch is dropped
  std::set<int64_t> seen;
  for (int64_t step = 0; step < sampler.steps_per_epoch(); ++step) {
    for (int64_t index : sampler.RankBatch(0, step, 0, 1)) {
      EXPECT_TRUE(seen.insert(index).second) << "index " << index << " twice";
      EXPECT_GE(index, 0);
      EXPECT_LT(index, 1000);
    }
  }
  EXPECT_EQ(seen.size(), 31u * 32u);
  auto order0 = sampler.EpochOrder(0);
  EXPECT_NE(order0, sampler.EpochOrder(1));
  EXPECT_EQ(order0, EpochSampler(1000, 32, 7).EpochOrder(0));  // a pure function of (seed, epoch)
  EXPECT_NE(order0, EpochSampler(1000, 32, 8).EpochOrder(0));
}

TEST(SamplerTest, RejectsBadSplits) {
  EpochSampler sampler(100, 10, 0);
  EXPECT_THROW(sampler.RankBatch(0, 0, 0, 3), Error);   // 3 does not divide 10
  EXPECT_THROW(sampler.RankBatch(0, 10, 0, 1), Error);  // past the epoch
  EXPECT_THROW(EpochSampler(5, 10, 0), Error);
}

// A tiny in-memory dataset: image i is filled with i % 251.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : identity_{"counting", "x", n, 10} {}
  int64_t size() const override { return identity_.size; }
  const DatasetIdentity& identity() const override { return identity_; }
  Result<RawSample> Get(int64_t index) const override {
    RawSample s;
    s.index = index;
    s.label = index % 10;
    s.height = 12;
    s.width = 10;
    s.channels = 1;
    s.pixels.resize(120);
    for (size_t i = 0; i < s.pixels.size(); ++i)
      s.pixels[i] = static_cast<uint8_t>((index * 7 + static_cast<int64_t>(i)) % 251);
    return s;
  }

 private:
  DatasetIdentity identity_;
};

StreamOptions Stream(int64_t workers) {
  StreamOptions o;
  o.seed = 3;
  o.global_batch = 8;
  o.num_patches = 16;
  o.augment.output_size = 8;
  o.num_workers = workers;
  return o;
}

void ExpectSameBatch(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.mask_noise, b.mask_noise));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
}

TEST(LoaderTest, ResumedStreamEqualsTheUninterruptedOne) {
  CountingDataset data(100);  // 12 steps per epoch
  LocalBatchSource full(data, Stream(1), 0, 0);
  std::vector<Batch> reference;
  for (int i = 0; i < 30; ++i) reference.push_back(full.Next());
  EXPECT_EQ(reference[12].epoch, 1);
  EXPECT_EQ(reference[12].step, 0);
  // Resume at epoch 1, step 5 (ordinal 17), with three workers.
  LocalBatchSource resumed(data, Stream(3), 1, 5);
  for (int i = 17; i < 30; ++i) ExpectSameBatch(resumed.Next(), reference[static_cast<size_t>(i)]);
}

TEST(LoaderTest, TwoRanksSeeWhatOneProcessSees) {
  CountingDataset data(100);
  LocalBatchSource one(data, Stream(2), 0, 0);
  StreamOptions r0 = Stream(1), r1 = Stream(1);
  r0.world_size = r1.world_size = 2;
  r1.rank = 1;
  LocalBatchSource rank0(data, r0, 0, 0), rank1(data, r1, 0, 0);
  for (int i = 0; i < 5; ++i) {
    Batch whole = one.Next(), a = rank0.Next(), b = rank1.Next();
    EXPECT_TRUE(torch::equal(whole.images, torch::cat({a.images, b.images})));
    EXPECT_TRUE(torch::equal(whole.mask_noise, torch::cat({a.mask_noise, b.mask_noise})));
  }
}

// The records of a CountingDataset, one of them corrupt.
class CountingRecords : public RecordStore {
 public:
  CountingRecords(int64_t n, int64_t corrupt) : data_(n), corrupt_(corrupt) {}
  const DatasetIdentity& identity() const override { return data_.identity(); }
  bool holds_encoded() const override { return false; }
  Result<std::string> Read(int64_t index) const override {
    if (index == corrupt_) return std::string("not a record");
    MAESTRO_ASSIGN_OR_RETURN(RawSample sample, data_.Get(index));
    return EncodeRecord(sample);
  }

 private:
  CountingDataset data_;
  int64_t corrupt_;
};

TEST(LoaderTest, ARecordStreamGivesTheDatasetsBatchesAndReplacesCorruptSamplesAlike) {
  auto store = std::make_shared<CountingRecords>(100, 13);
  auto dataset = RecordDataset(store);
  LocalBatchSource by_index(*dataset, Stream(2), 0, 3);
  StreamSpec spec;
  spec.seed = 3;
  spec.global_batch = 8;
  spec.epoch = 0;
  spec.cursor = 3 * 8;
  auto records = store->OpenStream(spec);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  LocalBatchSource streamed(*dataset, std::move(*records), Stream(3), 0, 3);
  int replaced = 0;
  for (int i = 0; i < 30; ++i) {  // across the epoch boundary (12 steps)
    Batch a = by_index.Next(), b = streamed.Next();
    ExpectSameBatch(a, b);
    EXPECT_EQ(a.skipped, b.skipped);
    for (const auto& line : b.skipped) {
      EXPECT_NE(line.find("sample 13: record 13 is not a version-1 record"), std::string::npos);
      EXPECT_NE(std::find(b.indices.begin(), b.indices.end(), 14), b.indices.end());
      ++replaced;
    }
  }
  EXPECT_GE(replaced, 1);
  // A stream out of place fails the batch with a message rather than training on wrong data.
  spec.cursor = 0;
  auto wrong = store->OpenStream(spec);
  ASSERT_TRUE(wrong.ok());
  LocalBatchSource misplaced(*dataset, std::move(*wrong), Stream(1), 0, 3);
  try {
    misplaced.Next();
    ADD_FAILURE() << "a misplaced stream was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.status().message().find("out of place"), std::string::npos) << e.what();
  }
}

TEST(TransformTest, CropFollowsTorchvisionBounds) {
  AugmentOptions o;
  for (uint64_t key = 0; key < 500; ++key) {
    CropBox box = SampleCrop(28, 28, o, key);
    EXPECT_GE(box.top, 0);
    EXPECT_GE(box.left, 0);
    EXPECT_LE(box.top + box.height, 28);
    EXPECT_LE(box.left + box.width, 28);
    const double area = static_cast<double>(box.height * box.width) / (28.0 * 28.0);
    EXPECT_GE(area, 0.15);  // 0.2 of the area, less rounding on a small image
    const double ratio = static_cast<double>(box.width) / static_cast<double>(box.height);
    EXPECT_GE(ratio, 0.5);
    EXPECT_LE(ratio, 2.0);
  }
  auto noise = MaskNoise(49, 1, 2, 3);
  EXPECT_TRUE(torch::equal(noise, MaskNoise(49, 1, 2, 3)));
  EXPECT_FALSE(torch::equal(noise, MaskNoise(49, 1, 3, 3)));
  EXPECT_GE(noise.min().item<float>(), 0.0f);
  EXPECT_LT(noise.max().item<float>(), 1.0f);
}

}  // namespace
}  // namespace maestro::dataloader
