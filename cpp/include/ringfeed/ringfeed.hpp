// ringfeed for C++: a zero-copy shared-memory ring of Arrow record batches.
//
//   #include <ringfeed/ringfeed.hpp>
//
//   auto w = ringfeed::Writer::create_bars("btc-1m");            // bar schema
//   w.write_bars(ts, symbols, open, high, low, close, volume);
//
//   ringfeed::Reader r("btc-1m", ringfeed::StartAt::Oldest);      // another process
//   if (auto batch = r.read(std::chrono::milliseconds(100))) {
//     auto close = batch->column<double>("close");                // points into the arena
//     std::printf("%f\n", close.back());
//     ArrowArray array; ArrowSchema schema;                      // or hand it to Arrow C++,
//     batch->export_to(&array, &schema);                         // nanoarrow, DuckDB...
//   }
//
//   ringfeed::Client daemon;                                      // ringfeedd, $RINGFEED_SOCKET
//   auto bars = daemon.bars("crypto", "BTCUSDT", "1h", "2021-01-01");   // zero-copy, cached
//   auto live = daemon.subscribe("crypto", "1m");                 // a Reader of the live topic
//   daemon.append_bars("crypto", ts, symbols, open, high, low, close, volume);
//
// Language level: C++17. Column views are span-like (data(), size(),
// begin()/end()); with C++20, `std::span<const double>(col.data(), col.size())`.
//
// Ownership. `Writer`, `Reader`, `Batch`, `Client`, `Bars` and `Replay` are
// move-only RAII handles; a moved-from handle throws `ringfeed::Error` if
// used. A `Batch` leases its
// slot: the writer will not rewrite that memory until the `Batch`, and every
// `ArrowArray` exported from it, are gone (an exported array keeps the lease
// until its release callback runs, even after the `Reader` is destroyed). A
// reader may hold `leases_per_reader` batches at once (default 4); reading
// more throws `TooManyLeases`. Column views (`Column`, `StringColumn`) do not
// own anything: use them while their `Batch` lives.
//
// Errors are exceptions deriving from `ringfeed::Error` (itself a
// `std::runtime_error`), carrying the Rust message and an `ErrorKind`; the
// common kinds have their own classes (`NotFound`, `Lagged`, `Closed`, ...;
// from the daemon client, `ConnectError` and `DaemonError` with its `kind()`).
// No Rust panic crosses into C++: the bridge catches it and throws an `Error`
// of kind `Panic`.
//
// Threads. Each handle is single-threaded (like a file descriptor): use one
// object from one thread at a time. Different objects may be used on
// different threads.
#pragma once


#include "ringfeed/error.hpp"
#include "ringfeed/detail.hpp"
#include "ringfeed/ring.hpp"
#include "ringfeed/client.hpp"

namespace ringfeed {

// ---------------------------------------------------------------------------
// Arenas.

/// A snapshot of an arena (what `ringfeed inspect NAME` shows).
struct ArenaStatus {
  std::string state;  // "ready", "closed" or "init"
  std::uint64_t write_seq = 0;
  bool writer_alive = false;
  std::uint32_t readers = 0;
  /// Leases held by all attached readers (batches and exports not yet released).
  std::uint32_t leases = 0;
  /// Buffers pinned by at least one reader.
  std::uint32_t leased_buffers = 0;
  std::uint32_t slots = 0;
  std::uint32_t buffers = 0;
  std::uint64_t slot_bytes = 0;
};

/// Inspects arena `name` without joining it. Throws `NotFound`.
inline ArenaStatus inspect(std::string_view name) {
  auto s = detail::call([&] { return ffi::arena_status(detail::str(name)); });
  return ArenaStatus{std::string(s.state), s.write_seq,      s.writer_alive, s.readers,   s.leases,
                     s.leased_buffers,     s.slots,          s.buffers,      s.slot_bytes};
}

/// Removes arena `name` (a leftover of a dead writer). Throws `NotFound`.
inline void remove(std::string_view name) {
  detail::call([&] { ffi::arena_remove(detail::str(name)); });
}

namespace detail {
/// Test hook: panics inside Rust; the bridge must turn it into `Error` (kind Panic).
inline void panic_for_test(std::string_view message) {
  call([&] { ffi::panic_for_test(str(message)); });
}
}  // namespace detail

}  // namespace ringfeed
