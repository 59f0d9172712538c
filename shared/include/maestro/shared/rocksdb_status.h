// rocksdb::Status -> Status, for the libraries that link RocksDB (the shard store, the
// coordinator's store). Header-only: maestro_shared itself does not link RocksDB.
#pragma once

#include <rocksdb/status.h>

#include <string>

#include "maestro/shared/status.h"

namespace maestro {

// NOT_FOUND, DATA_LOSS (corruption), INVALID_ARGUMENT, else UNAVAILABLE (I/O, a held lock);
// the message is "what: RocksDB's message".
inline Status FromRocksStatus(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return OkStatus();
  const std::string message = what + ": " + s.ToString();
  if (s.IsNotFound()) return NotFoundError(message);
  if (s.IsCorruption()) return DataLossError(message);
  if (s.IsInvalidArgument()) return InvalidArgumentError(message);
  return UnavailableError(message);
}

}  // namespace maestro
