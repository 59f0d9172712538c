#include "maestro/worker/progress.h"

#include <cstdio>
#include <string>

namespace maestro::worker {

std::optional<ProgressLine> ParseProgressLine(std::string_view line) {
  if (line.substr(0, 5) != "step ") return std::nullopt;
  const std::string text(line);
  ProgressLine p;
  long long step = 0, total = 0;
  double percent = 0;
  if (std::sscanf(text.c_str(), "step %lld/%lld (%lf%%) epoch %lf loss %lf lr %lf %lf img/s", &step,
                  &total, &percent, &p.epoch, &p.loss, &p.lr, &p.images_per_second) != 7) {
    return std::nullopt;
  }
  p.step = step;
  p.total_steps = total;
  return p;
}

}  // namespace maestro::worker
