// Random identifiers: stream ids, idempotency keys. Header-only; thread-safe.
#pragma once

#include <cstdio>
#include <random>
#include <string>

namespace maestro {

// A fresh random 128-bit id as 32 lowercase hex digits (std::random_device).
inline std::string RandomHexId() {
  std::random_device device;
  char text[33];
  std::snprintf(text, sizeof(text), "%08x%08x%08x%08x", device(), device(), device(), device());
  return text;
}

}  // namespace maestro
