// Time as the coordinator's scheduler reads it: a steady clock for leases and timeouts, and
// the wall clock for the times it records. Injectable, so lease, timeout and retry tests run
// on simulated time (ManualClock) instead of sleeping. Both are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

namespace maestro {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds of a monotonic clock (differences only).
  virtual int64_t SteadyMs() const = 0;
  // Milliseconds since the Unix epoch.
  virtual int64_t WallMs() const = 0;
};

// The process's clocks (std::chrono::steady_clock and system_clock). Never destroyed.
const Clock& SystemClock();

// Time that moves only when told to: both clocks advance together.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t wall_ms = 1'800'000'000'000) : wall_ms_(wall_ms) {}
  int64_t SteadyMs() const override { return steady_ms_.load(); }
  int64_t WallMs() const override { return wall_ms_.load(); }
  void Advance(int64_t ms) {
    steady_ms_ += ms;
    wall_ms_ += ms;
  }

 private:
  std::atomic<int64_t> steady_ms_{1'000'000};
  std::atomic<int64_t> wall_ms_;
};

}  // namespace maestro
