// maestro-coordinator: the coordinator daemon (issue 6; this part: experiments are validated,
// expanded and stored durably; scheduling on workers comes next).
//
//   maestro-coordinator --db DIR [--listen 127.0.0.1:7071]
//
// Runs until SIGTERM or SIGINT. All state is in the RocksDB store under --db: a coordinator
// killed with SIGKILL and started again on the same folder carries on where it stopped.
#include <signal.h>

#include <iostream>

#include "maestro/coordinator/service.h"
#include "maestro/shared/flags.h"

int main(int argc, char** argv) {
  std::string db, listen = "127.0.0.1:7071";
  maestro::FlagParser flags("maestro-coordinator",
                            "The coordinator daemon: experiments (validated against the "
                            "trainer's schema,\nexpanded into trials, stored in RocksDB, one "
                            "synced batch per change). Runs until\nSIGTERM or SIGINT.");
  flags.Add("db", &db, "state folder (created when missing)");
  flags.Add("listen", &listen,
            "gRPC address host:port (0.0.0.0:PORT for other machines; port 0: any free port, "
            "printed at start)");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  if (db.empty()) {
    std::cerr << "maestro-coordinator: --db is required\n";
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // taken by sigwait; threads inherit the mask
  auto server = maestro::coordinator::CoordinatorServer::Start(db, listen);
  if (!server.ok()) {
    std::cerr << "maestro-coordinator: " << server.status().ToString() << "\n";
    return server.status().code() == maestro::StatusCode::kUnavailable ? 3 : 2;
  }
  std::cout << "state in " << db << "; listening on port " << (*server)->port() << std::endl;
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  std::cout << "stopping on signal " << signal_number << std::endl;
  (*server)->Shutdown();
  return 0;
}
