// Status <-> grpc::Status, for the RPC libraries (maestro_proto users only: never include this
// from a translation unit that sees LibTorch's headers).
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "maestro/shared/status.h"

namespace maestro {

// The canonical code and the message.
grpc::Status ToGrpcStatus(const Status& status);
// The code (CANCELLED, DEADLINE_EXCEEDED and the rest read as UNAVAILABLE: retryable), the
// message prefixed with `what`.
Status FromGrpcStatus(const grpc::Status& status, const std::string& what);

// "INVALID_ARGUMENT" and so on: a status code's name (metric labels, tools' output).
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace maestro
