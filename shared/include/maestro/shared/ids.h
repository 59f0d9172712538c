// Identifiers: random ones (stream ids, idempotency keys) and this machine's name.
// Header-only; thread-safe.
#pragma once

#include <unistd.h>

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

// This machine's host name (gethostname), or `fallback` when it cannot be read.
inline std::string HostName(const std::string& fallback) {
  char name[256] = {};
  return gethostname(name, sizeof(name) - 1) == 0 ? std::string(name) : fallback;
}

}  // namespace maestro
