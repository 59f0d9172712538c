// The trainer's progress record: written and read back, refused when it is anything else, and
// appended by several processes at once without a torn line.
#include "maestro/shared/progress_record.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

#include "maestro/shared/file_util.h"

namespace maestro {
namespace {

TEST(ProgressRecordTest, RoundTrips) {
  ProgressRecord r;
  r.phase = "train";
  r.rank = 1;
  r.step = 40;
  r.total_steps = 235;
  r.epoch = 0.34;
  r.loss = 0.1234;
  r.lr = 1.234e-4;
  r.images_per_second = 1234.5;
  r.time_ms = 1796601600000;
  const std::string line = FormatProgressRecord(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto back = ParseProgressRecord(line);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->phase, "train");
  EXPECT_EQ(back->rank, 1);
  EXPECT_EQ(back->step, 40);
  EXPECT_EQ(back->total_steps, 235);
  EXPECT_DOUBLE_EQ(back->epoch, 0.34);
  EXPECT_DOUBLE_EQ(back->loss, 0.1234);
  EXPECT_DOUBLE_EQ(back->lr, 1.234e-4);
  EXPECT_DOUBLE_EQ(back->images_per_second, 1234.5);
  EXPECT_EQ(back->time_ms, 1796601600000);
  // A diverged loss is recorded as null and read as NaN.
  r.loss = std::nan("");
  back = ParseProgressRecord(FormatProgressRecord(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(std::isnan(back->loss));
}

// The window since the previous record: counts and sums of the per-step durations in the
// shared buckets, read back exactly; a record without one has none.
TEST(ProgressRecordTest, AWindowRoundTripsInItsBuckets) {
  DurationCounts d;
  d.Observe(0.0005);  // first bucket (<= 1 ms)
  d.Observe(0.001);   // first bucket: the bounds are inclusive
  d.Observe(0.3);     // (0.25, 0.5]
  d.Observe(1000);    // above the last bound: the +Inf bucket
  EXPECT_EQ(d.counts.front(), 2);
  EXPECT_EQ(d.counts[8], 1);
  EXPECT_EQ(d.counts.back(), 1);
  EXPECT_EQ(d.total(), 4);
  EXPECT_DOUBLE_EQ(d.sum, 1000.3015);
  ProgressRecord r;
  r.phase = "train";
  r.step = 10;
  r.has_window = true;
  r.steps = 5;
  r.samples = 160;
  r.step_s = d;
  r.data_wait_s.Observe(0.02);
  r.grad_norm = 0.75;
  r.checkpoint_age_s = 12.5;
  r.checkpoint_interval_s = 30;
  auto back = ParseProgressRecord(FormatProgressRecord(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->has_window);
  EXPECT_EQ(back->steps, 5);
  EXPECT_EQ(back->samples, 160);
  EXPECT_EQ(back->step_s.counts, d.counts);
  EXPECT_DOUBLE_EQ(back->step_s.sum, d.sum);
  EXPECT_EQ(back->data_wait_s.total(), 1);
  EXPECT_EQ(back->allreduce_s.total(), 0);
  EXPECT_DOUBLE_EQ(back->grad_norm, 0.75);
  EXPECT_DOUBLE_EQ(back->checkpoint_age_s, 12.5);
  EXPECT_DOUBLE_EQ(back->checkpoint_interval_s, 30);
  r.has_window = false;
  back = ParseProgressRecord(FormatProgressRecord(r));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->has_window);
  // Counts of another length, or negative, are refused.
  ProgressRecord plain;
  plain.phase = "train";
  std::string line = FormatProgressRecord(plain);
  line.pop_back();  // the closing brace: fields are appended
  EXPECT_FALSE(
      ParseProgressRecord(line + R"(,"steps":1,"samples":1,"step_s":{"sum":1,"counts":[1]}})")
          .ok());
  EXPECT_FALSE(ParseProgressRecord(line + R"(,"steps":-1,"samples":1})").ok());
}

TEST(ProgressRecordTest, AnythingElseIsRefusedNamingWhy) {
  auto why = [](const std::string& line) {
    auto r = ParseProgressRecord(line);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << line;
    return r.status().message();
  };
  const std::string good =
      R"("phase":"train","rank":0,"step":4,"total_steps":9,"epoch":0.5,"loss":1,"lr":0.1,)"
      R"("images_per_s":10,"time_ms":5})";
  EXPECT_TRUE(ParseProgressRecord(R"({"v":1,)" + good).ok());
  // The human-readable progress line is not a record.
  EXPECT_NE(why("step 40/235 (17.0%)  epoch 0.34  loss 0.1234  lr 1.234e-04  1234 img/s")
                .find("progress record:"),
            std::string::npos);
  EXPECT_EQ(why(R"({"v":2,)" + good), "progress record: version 2, this build reads 1");
  EXPECT_EQ(why(R"({"v":1,"phase":"warmup","rank":0})"),
            "progress record: phase: unknown phase 'warmup'");
  EXPECT_EQ(why(R"({"v":1,"phase":"train","rank":"0"})"), "progress record: rank: not an integer");
  EXPECT_EQ(why(R"({"v":1,"phase":"train","rank":0,"step":-1,"total_steps":9,"time_ms":5})"),
            "progress record: a negative rank or step");
  EXPECT_EQ(why(R"({"v":1,"phase":"train","rank":0,"step":1,"total_steps":9,"time_ms":5,)"
                R"("epoch":"x"})"),
            "progress record: epoch: not a number");
  EXPECT_EQ(why("[1]"), "progress record: not a JSON object");
  EXPECT_EQ(why(std::string(5000, ' ')), "progress record: longer than 4096 bytes");
}

TEST(ProgressRecordTest, RanksAppendingAtOnceNeverTearALine) {
  const std::string path = "/tmp/maestro_progress_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  constexpr int kRanks = 4, kRecords = 500;
  for (int rank = 0; rank < kRanks; ++rank) {
    if (::fork() == 0) {
      ProgressRecord r;
      r.phase = "train";
      r.rank = rank;
      for (int step = 1; step <= kRecords; ++step) {
        r.step = step;
        if (!AppendProgressRecord(path, r).ok()) ::_exit(1);
      }
      ::_exit(0);
    }
  }
  for (int i = 0; i < kRanks; ++i) {
    int status = 0;
    ::wait(&status);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  int64_t last_step[kRanks] = {};
  while (std::getline(in, line)) {
    auto r = ParseProgressRecord(line);
    ASSERT_TRUE(r.ok()) << r.status().ToString() << ": " << line;
    EXPECT_EQ(r->step, last_step[r->rank] + 1) << "rank " << r->rank << "'s records in order";
    last_step[r->rank] = r->step;
    ++lines;
  }
  EXPECT_EQ(lines, kRanks * kRecords);
  ::unlink(path.c_str());
  EXPECT_FALSE(AppendProgressRecord("/nonexistent-dir/progress", ProgressRecord{}).ok());
}

}  // namespace
}  // namespace maestro
