// Reading the safetensors fixtures the Python oracles write (tests/python/*_fixture.py) into
// the folder named by MAESTRO_FIXTURE_DIR (ctest sets it). Header-only, for tests.
#pragma once

#include <torch/torch.h>

#include <cstdlib>
#include <map>
#include <string>

#include "maestro/checkpoint/torch_bridge.h"

namespace maestro::testing {

inline std::map<std::string, torch::Tensor> LoadFixture(const std::string& name) {
  const char* dir = std::getenv("MAESTRO_FIXTURE_DIR");
  auto content = checkpoint::ReadSafetensors(std::string(dir ? dir : "fixtures") + "/" + name);
  if (!content.ok()) throw Error(content.status());
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key, tensor] : content->tensors) out[key] = checkpoint::ToTorch(tensor);
  return out;
}

}  // namespace maestro::testing
