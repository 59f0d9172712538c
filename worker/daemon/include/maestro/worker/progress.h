// Reading a trainer's output: its progress lines (trainer.cpp prints one every
// log.interval_steps optimizer steps) and its last error line.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace maestro::worker {

struct ProgressLine {
  int64_t step = 0, total_steps = 0;
  double epoch = 0, loss = 0, lr = 0, images_per_second = 0;
};

// "step 40/235 (17.0%)  epoch 0.34  loss 0.1234  lr 1.234e-04  1234 img/s  ETA 3m12s" ->
// its numbers; nullopt for any other line.
std::optional<ProgressLine> ParseProgressLine(std::string_view line);

}  // namespace maestro::worker
