#include "maestro/shared/grpc_status.h"

namespace maestro {

grpc::Status ToGrpcStatus(const Status& status) {
  using grpc::StatusCode;
  switch (status.code()) {
    case maestro::StatusCode::kOk:
      return grpc::Status::OK;
    case maestro::StatusCode::kInvalidArgument:
      return grpc::Status(StatusCode::INVALID_ARGUMENT, status.message());
    case maestro::StatusCode::kNotFound:
      return grpc::Status(StatusCode::NOT_FOUND, status.message());
    case maestro::StatusCode::kFailedPrecondition:
      return grpc::Status(StatusCode::FAILED_PRECONDITION, status.message());
    case maestro::StatusCode::kDataLoss:
      return grpc::Status(StatusCode::DATA_LOSS, status.message());
    case maestro::StatusCode::kUnavailable:
      return grpc::Status(StatusCode::UNAVAILABLE, status.message());
    case maestro::StatusCode::kUnauthenticated:
      return grpc::Status(StatusCode::UNAUTHENTICATED, status.message());
    case maestro::StatusCode::kPermissionDenied:
      return grpc::Status(StatusCode::PERMISSION_DENIED, status.message());
    case maestro::StatusCode::kResourceExhausted:
      return grpc::Status(StatusCode::RESOURCE_EXHAUSTED, status.message());
    case maestro::StatusCode::kAborted:
      return grpc::Status(StatusCode::ABORTED, status.message());
    case maestro::StatusCode::kInternal:
      break;
  }
  return grpc::Status(StatusCode::INTERNAL, status.message());
}

Status FromGrpcStatus(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return OkStatus();
  const std::string message = what + ": " + status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return InvalidArgumentError(message);
    case grpc::StatusCode::NOT_FOUND:
      return NotFoundError(message);
    case grpc::StatusCode::FAILED_PRECONDITION:
      return FailedPreconditionError(message);
    case grpc::StatusCode::DATA_LOSS:
      return DataLossError(message);
    case grpc::StatusCode::INTERNAL:
      return InternalError(message);
    case grpc::StatusCode::UNAUTHENTICATED:
      return UnauthenticatedError(message);
    case grpc::StatusCode::PERMISSION_DENIED:
      return PermissionDeniedError(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return ResourceExhaustedError(message);
    case grpc::StatusCode::ABORTED:
      return AbortedError(message);
    default:
      return UnavailableError(message);
  }
}

const char* GrpcCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const auto i = static_cast<size_t>(code);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : "UNKNOWN";
}

}  // namespace maestro
