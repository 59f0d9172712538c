// A one-line description of the machine a figure was measured on, for bench results.
#pragma once

#include <fstream>
#include <string>
#include <thread>

namespace maestro::tools {

inline std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

inline std::string MachineDescription() {
  return CpuModel() + ", " + std::to_string(std::thread::hardware_concurrency()) +
         " hardware threads";
}

}  // namespace maestro::tools
