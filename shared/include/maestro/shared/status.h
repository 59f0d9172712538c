// Status and Result<T>: errors as values for maestro's own libraries.
//
// A Status is either OK or a canonical code (the gRPC codes we use) with a message meant for a
// person. Result<T> holds a T or a non-OK Status. Both are cheap to move and thread-compatible
// (no shared state). Code that cannot return an error (constructors, torch modules) throws
// maestro::Error, which carries the same Status.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace maestro {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // the caller's input is wrong; retrying the same call fails again
  kNotFound,            // a named file, key or tensor does not exist
  kFailedPrecondition,  // the system is not in a state where the call can run
  kDataLoss,            // stored bytes are truncated or corrupt
  kUnavailable,         // a retryable fault (I/O, network)
  kInternal,            // a broken invariant of ours
  kUnauthenticated,     // the caller proved no identity (no, malformed, unknown or expired credential)
  kPermissionDenied,    // the caller is known but may not do this (role, another worker's id)
  kResourceExhausted,   // a request beyond a size limit
  kAborted,             // a conflict the caller resolves by starting over (a stale session)
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "context: message"; OK stays OK.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFoundError(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status DataLossError(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }
inline Status UnavailableError(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
inline Status InternalError(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status UnauthenticatedError(std::string m) {
  return Status(StatusCode::kUnauthenticated, std::move(m));
}
inline Status PermissionDeniedError(std::string m) {
  return Status(StatusCode::kPermissionDenied, std::move(m));
}
inline Status ResourceExhaustedError(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status AbortedError(std::string m) { return Status(StatusCode::kAborted, std::move(m)); }

// The exception form of a Status, for code paths that cannot return one.
class Error : public std::runtime_error {
 public:
  explicit Error(Status status)
      : std::runtime_error(status.ToString()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

// Throws Error if `status` is not OK.
inline void ThrowIfError(const Status& status) {
  if (!status.ok()) throw Error(status);
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : state_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(state_).ok()) {
      state_ = Status(StatusCode::kInternal, "Result constructed from an OK status");
    }
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(state_); }

  // The value; throws Error when there is none.
  T& value() & {
    if (!ok()) throw Error(std::get<Status>(state_));
    return std::get<T>(state_);
  }
  const T& value() const& {
    if (!ok()) throw Error(std::get<Status>(state_));
    return std::get<T>(state_);
  }
  T&& value() && {
    if (!ok()) throw Error(std::get<Status>(state_));
    return std::get<T>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace maestro

// Returns early from the enclosing function with the Status of `expr` if it is not OK.
#define MAESTRO_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::maestro::Status maestro_status_ = (expr);        \
    if (!maestro_status_.ok()) return maestro_status_; \
  } while (0)

#define MAESTRO_CONCAT_INNER(a, b) a##b
#define MAESTRO_CONCAT(a, b) MAESTRO_CONCAT_INNER(a, b)
// Declares `lhs` from a Result<T> expression, or returns its Status from the enclosing function.
#define MAESTRO_ASSIGN_OR_RETURN(lhs, expr) \
  MAESTRO_ASSIGN_OR_RETURN_IMPL(MAESTRO_CONCAT(maestro_result_, __LINE__), lhs, expr)
#define MAESTRO_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                                  \
  if (!result.ok()) return result.status();              \
  lhs = std::move(result).value()
