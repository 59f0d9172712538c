// Serving a prometheus-cpp registry as /metrics over HTTP, for the daemons (maestro-data,
// maestro-coordinator, maestro-worker). Header-only: include it only from targets that link
// prometheus-cpp (pull and core).
#pragma once

#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "maestro/shared/grpc_auth.h"
#include "maestro/shared/status.h"
#include "maestro/shared/version.h"

namespace maestro {

// Listens on `listen` (host:port; port 0: any free one) and serves `registry`. UNAVAILABLE
// when the address cannot be bound; PERMISSION_DENIED for an address that is not a loopback
// one. /metrics has no TLS here: prometheus-cpp 1.0.1 serves it with Debian's civetweb 1.15,
// whose TLS (OpenSSL loaded at run time) crashes against OpenSSL 3 on the first handshake
// (checked: a null function called in the civetweb worker thread), so credentials for it would
// cross the network in clear text. Other machines scrape through a TLS proxy
// (docs/security.md#metrics).
inline Result<std::unique_ptr<prometheus::Exposer>> ServeMetrics(
    const std::string& listen, const std::shared_ptr<prometheus::Registry>& registry) {
  if (!IsLoopbackAddress(listen)) {
    return PermissionDeniedError(
        "--metrics-listen " + listen +
        ": /metrics is served on loopback addresses only (127.0.0.1:PORT): this build cannot "
        "serve it over TLS, and metrics or a password would cross the network in clear text; "
        "let other machines scrape it through a TLS proxy (docs/security.md#metrics)");
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return UnavailableError("cannot serve /metrics on " + listen + ": " + e.what());
  }
  exposer->RegisterCollectable(registry);
  return exposer;
}

// maestro_build_info{daemon, build} 1: which program and build a target is (docs/metrics.md).
inline void RegisterBuildInfo(prometheus::Registry& registry, const std::string& daemon) {
  prometheus::BuildGauge()
      .Name("maestro_build_info")
      .Help("Always 1: the daemon and its build (version+commit)")
      .Register(registry)
      .Add({{"daemon", daemon}, {"build", MaestroBuild()}})
      .Set(1);
}

// The port an exposer listens on; 0 without one.
inline int MetricsPort(const prometheus::Exposer* exposer) {
  if (exposer == nullptr) return 0;
  auto ports = exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace maestro
