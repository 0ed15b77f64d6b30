// ringfeed::Error and the exception classes, one per ErrorKind.
// Part of ringfeed.hpp (include that): see it for the overview, ownership,
// errors and threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ringfeed/arrow_c.h"
#include "rust/cxx.h"  // rust::Error and the other cxx types, generated next to the bridge header
#include "ringfeed-cpp/src/lib.rs.h"

namespace ringfeed {

/// What went wrong; the values mirror the Rust bridge's `ErrorKind`.
using ErrorKind = ffi::ErrorKind;

/// A short name for `kind` ("NotFound", ...).
inline const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::Other: return "Other";
    case ErrorKind::InvalidArgument: return "InvalidArgument";
    case ErrorKind::NotFound: return "NotFound";
    case ErrorKind::AlreadyExists: return "AlreadyExists";
    case ErrorKind::PermissionDenied: return "PermissionDenied";
    case ErrorKind::SchemaMismatch: return "SchemaMismatch";
    case ErrorKind::TooLarge: return "TooLarge";
    case ErrorKind::Timeout: return "Timeout";
    case ErrorKind::Full: return "Full";
    case ErrorKind::Lagged: return "Lagged";
    case ErrorKind::WriterGone: return "WriterGone";
    case ErrorKind::Closed: return "Closed";
    case ErrorKind::TooManyLeases: return "TooManyLeases";
    case ErrorKind::Corrupt: return "Corrupt";
    case ErrorKind::Panic: return "Panic";
    case ErrorKind::Connect: return "Connect";
    case ErrorKind::Daemon: return "Daemon";
    case ErrorKind::Forked: return "Forked";
  }
  return "Unknown";
}

/// Every ringfeed failure. `what()` is the Rust message: what happened and what to do.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

/// No ring with that name (start its writer first).
class NotFound : public Error { using Error::Error; };
/// A ring with that name exists already (pass `RingOptions::force`, or `ringfeed rm` it).
class AlreadyExists : public Error { using Error::Error; };
/// A batch or column does not have the type the ring or the caller expects.
class SchemaMismatch : public Error { using Error::Error; };
/// A batch is larger than a slot: raise `RingOptions::slot_bytes` or split it.
class TooLarge : public Error { using Error::Error; };
/// A blocking ring stayed full for the whole timeout.
class Timeout : public Error { using Error::Error; };
/// The writer's process died; batches already read stay valid.
class WriterGone : public Error { using Error::Error; };
/// The writer closed the ring and every batch was read (or the Writer is closed).
class Closed : public Error { using Error::Error; };
/// This reader holds as many batches as the ring allows: drop some first.
class TooManyLeases : public Error { using Error::Error; };
/// The reader fell behind the writer; it continues with the oldest batch still present.
class Lagged : public Error {
 public:
  Lagged(ErrorKind kind, const std::string& what, std::uint64_t missed)
      : Error(kind, what), missed_(missed) {}
  /// Batches this reader lost.
  std::uint64_t missed() const noexcept { return missed_; }

 private:
  std::uint64_t missed_;
};

/// No daemon listens on the socket (start `ringfeedd`, or check `RINGFEED_SOCKET`),
/// or the connection to it broke.
class ConnectError : public Error { using Error::Error; };
/// The daemon refused a request. `kind()` is its machine-readable reason:
/// "unknown_dataset", "unknown_symbol", "bad_timeframe", "bad_request",
/// "too_large", "too_many_pending", "busy", "store", "ring", "internal" or
/// "followed".
/// (`Error::kind()`, through a base reference, is `ErrorKind::Daemon`.)
class DaemonError : public Error {
 public:
  DaemonError(ErrorKind kind, const std::string& what, std::string daemon_kind)
      : Error(kind, what), daemon_kind_(std::move(daemon_kind)) {}
  const std::string& kind() const noexcept { return daemon_kind_; }

 private:
  std::string daemon_kind_;
};

}  // namespace ringfeed
