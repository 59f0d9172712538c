// The worker daemon's pieces without a coordinator: its launch plans (launch_plan_test.cpp), and
// trainer processes (real children: exit statuses, signals, SIGTERM then SIGKILL after the
// grace period, an exec failure, the environment they get; a group of local ranks).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "maestro/shared/file_util.h"
#include "maestro/worker/progress_reader.h"
#include "maestro/worker/trainer_process.h"

namespace maestro::worker {
namespace {

std::string Line(const std::string& phase, int64_t rank, int64_t step, double loss) {
  ProgressRecord r;
  r.phase = phase;
  r.rank = rank;
  r.step = step;
  r.total_steps = 117;
  r.loss = loss;
  r.images_per_second = loss > 0 ? 500 : 0;
  return FormatProgressRecord(r) + "\n";
}

TEST(ProgressReaderTest, KeepsRankZerosLastTrainingFigures) {
  ProgressReader reader;
  reader.Feed(Line("start", 0, 0, 0));
  EXPECT_FALSE(reader.figures().has_value()) << "a start record has no figures yet";
  const std::string train = Line("train", 0, 110, 1.7063);
  reader.Feed(train.substr(0, 20));  // a line arrives in pieces
  EXPECT_FALSE(reader.figures().has_value());
  reader.Feed(train.substr(20));
  ASSERT_TRUE(reader.figures().has_value());
  EXPECT_EQ(reader.figures()->step, 110);
  reader.Feed(Line("train", 1, 111, 9.0));  // another rank's figures are not the attempt's
  EXPECT_EQ(reader.figures()->step, 110);
  // The demo once showed "linprobe 117/117 loss 0.0000": a done record without figures had
  // replaced the last progress line's.
  reader.Feed(Line("done", 0, 117, 0));
  EXPECT_EQ(reader.figures()->step, 110);
  EXPECT_DOUBLE_EQ(reader.figures()->loss, 1.7063);
  EXPECT_TRUE(reader.first_problem().empty());
  reader.Feed("step 117/117 (100.0%)  epoch 1.00  loss 1.7063\n");
  EXPECT_NE(reader.first_problem().find("progress record:"), std::string::npos);
  reader.Feed(std::string(ProgressReader::kMaxLineBytes + 1, 'x'));  // no newline: dropped
  reader.Feed(Line("train", 0, 116, 1.5));
  EXPECT_EQ(reader.figures()->step, 116);
}

// Every rank's windows are kept for the per-rank metrics until taken, in order.
TEST(ProgressReaderTest, KeepsEveryRanksWindowsUntilTaken) {
  ProgressReader reader;
  for (int64_t rank : {0, 1}) {
    ProgressRecord r;
    r.phase = "train";
    r.rank = rank;
    r.step = 5;
    r.has_window = true;
    r.steps = 5;
    r.samples = 32 * 5;
    reader.Feed(FormatProgressRecord(r) + "\n");
  }
  reader.Feed(Line("train", 0, 10, 1.0));  // no window
  auto windows = reader.TakeWindows();
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[0].rank, 0);
  EXPECT_EQ(windows[1].rank, 1);
  EXPECT_EQ(windows[1].samples, 160);
  EXPECT_TRUE(reader.TakeWindows().empty());
  EXPECT_EQ(reader.figures()->step, 10);
}

class TrainerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = "/tmp/maestro_process_";
    log_.append(std::to_string(::getpid()));
    log_.append(".log");
  }
  void TearDown() override { unlink(log_.c_str()); }

  static ProcessExit WaitFor(TrainerProcess& process, int seconds = 20) {
    for (int i = 0; i < seconds * 100; ++i) {
      if (auto exit = process.Poll()) return *exit;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    process.Kill();
    ADD_FAILURE() << "the child did not end";
    return {};
  }

  std::string log_;
};

TEST_F(TrainerProcessTest, ExitStatusOutputAndEnvironment) {
  auto process =
      TrainerProcess::Start({"/bin/sh", "-c", "echo out $MAESTRO_ATTEMPT; echo err >&2; exit 4"},
                            log_, {"MAESTRO_ATTEMPT=7"});
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  const ProcessExit exit = WaitFor(*process);
  EXPECT_EQ(exit.exit_code, 4);
  auto text = ReadFile(log_);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("out 7\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("err\n"), std::string::npos);
}

TEST_F(TrainerProcessTest, StopSendsSigtermThenSigkillAfterTheGracePeriod) {
  // A child that exits 3 on SIGTERM (as the trainer does after checkpointing).
  auto polite = TrainerProcess::Start(
      {"/bin/sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.05; done"}, log_);
  ASSERT_TRUE(polite.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  polite->Stop(std::chrono::seconds(10));
  EXPECT_EQ(WaitFor(*polite).exit_code, 3);

  // A child that ignores SIGTERM is killed once the grace period has passed.
  auto stubborn = TrainerProcess::Start(
      {"/bin/sh", "-c", "trap '' TERM; while true; do sleep 0.05; done"}, log_);
  ASSERT_TRUE(stubborn.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  stubborn->Stop(std::chrono::milliseconds(300));
  const ProcessExit exit = WaitFor(*stubborn);
  EXPECT_EQ(exit.exit_code, -1);
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

// A GPU trial's local ranks: one process each, with its own environment, in one group.
TEST_F(TrainerProcessTest, AGroupRunsOneProcessPerLocalRankAndEndsWhenAllHave) {
  auto group = TrainerProcess::StartGroup(
      {"/bin/sh", "-c",
       "sleep 0.$LOCAL_RANK; echo rank $RANK of $WORLD_SIZE pgid $(cut -d' ' -f5 /proc/$$/stat)"},
      log_, {"WORLD_SIZE=3"},
      {{"RANK=0", "LOCAL_RANK=0"}, {"RANK=1", "LOCAL_RANK=1"}, {"RANK=2", "LOCAL_RANK=2"}});
  ASSERT_TRUE(group.ok()) << group.status().ToString();
  const pid_t leader = group->pid();
  const ProcessExit exit = WaitFor(*group);
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_EQ(exit.signal, 0);
  auto text = ReadFile(log_);
  ASSERT_TRUE(text.ok());
  for (int rank = 0; rank < 3; ++rank) {
    const std::string line = "rank " + std::to_string(rank) + " of 3 pgid";
    const size_t at = text->find(line);
    ASSERT_NE(at, std::string::npos) << *text;
    EXPECT_EQ(std::atoi(text->c_str() + at + line.size()), leader) << *text;  // one group
  }
}

TEST_F(TrainerProcessTest, AGroupEndsWithItsFirstFailureAndTakesTheOthersDown) {
  // Rank 1 fails after a moment; ranks 0 and 2 would wait for it forever (as in a collective),
  // and rank 2 even ignores SIGTERM: both are ended, and the group reports rank 1's exit.
  auto group = TrainerProcess::StartGroup(
      {"/bin/sh", "-c",
       "if [ $RANK = 1 ]; then sleep 0.3; exit 5; fi; "
       "if [ $RANK = 2 ]; then trap '' TERM; fi; while true; do sleep 0.05; done"},
      log_, {}, {{"RANK=0"}, {"RANK=1"}, {"RANK=2"}});
  ASSERT_TRUE(group.ok()) << group.status().ToString();
  const auto start = std::chrono::steady_clock::now();
  const ProcessExit exit = WaitFor(*group);
  EXPECT_EQ(exit.exit_code, 5);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(TrainerProcessTest, AGroupStoppedByTheWorkerReportsThePreemption) {
  auto group = TrainerProcess::StartGroup(
      {"/bin/sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.05; done"}, log_, {},
      {{"RANK=0"}, {"RANK=1"}});
  ASSERT_TRUE(group.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  group->Stop(std::chrono::seconds(10));
  EXPECT_EQ(WaitFor(*group).exit_code, 3);
}

TEST_F(TrainerProcessTest, AnExecFailureIsExit127WithTheReasonLogged) {
  auto process = TrainerProcess::Start({"/nonexistent/maestro-train", "pretrain"}, log_);
  ASSERT_TRUE(process.ok());
  EXPECT_EQ(WaitFor(*process).exit_code, 127);
  auto text = ReadFile(log_);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("cannot execute the trainer"), std::string::npos) << *text;
}

}  // namespace
}  // namespace maestro::worker
