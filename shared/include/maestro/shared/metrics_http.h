// Serving a prometheus-cpp registry as /metrics over HTTP, for the daemons (maestro-data,
// maestro-coordinator, maestro-worker). Header-only: include it only from targets that link
// prometheus-cpp (pull and core).
#pragma once

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "maestro/shared/status.h"

namespace maestro {

// Listens on `listen` (host:port; port 0: any free one) and serves `registry`. UNAVAILABLE
// when the address cannot be bound.
inline Result<std::unique_ptr<prometheus::Exposer>> ServeMetrics(
    const std::string& listen, const std::shared_ptr<prometheus::Registry>& registry) {
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return UnavailableError("cannot serve /metrics on " + listen + ": " + e.what());
  }
  exposer->RegisterCollectable(registry);
  return exposer;
}

// The port an exposer listens on; 0 without one.
inline int MetricsPort(const prometheus::Exposer* exposer) {
  if (exposer == nullptr) return 0;
  auto ports = exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace maestro
