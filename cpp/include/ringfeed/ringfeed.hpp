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
/// "too_large", "too_many_pending", "busy", "store", "ring" or "internal".
/// (`Error::kind()`, through a base reference, is `ErrorKind::Daemon`.)
class DaemonError : public Error {
 public:
  DaemonError(ErrorKind kind, const std::string& what, std::string daemon_kind)
      : Error(kind, what), daemon_kind_(std::move(daemon_kind)) {}
  const std::string& kind() const noexcept { return daemon_kind_; }

 private:
  std::string daemon_kind_;
};

namespace detail {

[[noreturn]] inline void throw_error(ErrorKind kind, std::uint64_t detail, const std::string& what) {
  switch (kind) {
    case ErrorKind::Connect: throw ConnectError(kind, what);
    case ErrorKind::Daemon: throw DaemonError(kind, what, std::string(ffi::last_error_daemon_kind()));
    case ErrorKind::NotFound: throw NotFound(kind, what);
    case ErrorKind::AlreadyExists: throw AlreadyExists(kind, what);
    case ErrorKind::SchemaMismatch: throw SchemaMismatch(kind, what);
    case ErrorKind::TooLarge: throw TooLarge(kind, what);
    case ErrorKind::Timeout: throw Timeout(kind, what);
    case ErrorKind::WriterGone: throw WriterGone(kind, what);
    case ErrorKind::Closed: throw Closed(kind, what);
    case ErrorKind::TooManyLeases: throw TooManyLeases(kind, what);
    case ErrorKind::Lagged: throw Lagged(kind, what, detail);
    default: throw Error(kind, what);
  }
}

/// Calls into the bridge, turning `rust::Error` into the typed exceptions above.
template <class F>
decltype(auto) call(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const rust::Error& e) {
    // The bridge records the kind in a thread-local just before cxx throws.
    throw_error(ffi::last_error_kind(), ffi::last_error_detail(), e.what());
  } catch (const std::invalid_argument& e) {
    // rust::Str refuses strings that are not UTF-8.
    throw Error(ErrorKind::InvalidArgument, std::string("invalid argument: ") + e.what());
  }
}

inline rust::Str str(std::string_view s) { return rust::Str(s.data(), s.size()); }

inline std::uint64_t millis(std::chrono::milliseconds d) {
  return d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
}

/// The one owner of an opaque Rust object (`rust::Box<T>`), behind `Writer`,
/// `Reader`, `Batch`, `Client`, `Bars` and `Replay`: move-only; destroying
/// it runs Rust's `Drop` (a writer closes its ring, a reader detaches, a
/// batch drops its lease); a moved-from handle is empty and throws `Error`
/// when used instead of dereferencing null.
template <class T>
class Handle {
 public:
  explicit Handle(rust::Box<T> b) : box_(std::move(b)) {}
  Handle(Handle&& o) noexcept : box_(std::move(o.box_)) { o.box_.reset(); }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      box_ = std::move(o.box_);
      o.box_.reset();
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  T& get(const char* what) {
    if (!box_) throw Error(ErrorKind::InvalidArgument, std::string("use of a moved-from ringfeed::") + what);
    return **box_;
  }
  const T& get(const char* what) const {
    if (!box_) throw Error(ErrorKind::InvalidArgument, std::string("use of a moved-from ringfeed::") + what);
    return **box_;
  }
  explicit operator bool() const noexcept { return box_.has_value(); }
  void reset() noexcept { box_.reset(); }

 private:
  std::optional<rust::Box<T>> box_;
};

template <class T>
inline constexpr bool unsupported_v = false;

/// Whether a column of Arrow C Data Interface format `f` can be read in
/// place as `T` (`Batch::column<T>`), and what errors call `T`.
struct ReadsAs {
  const char* type;
  bool ok;
};
template <class T>
ReadsAs reads_as(std::string_view f) noexcept {
  using std::int8_t, std::int16_t, std::int32_t, std::int64_t;
  using std::uint8_t, std::uint16_t, std::uint32_t, std::uint64_t;
  if constexpr (std::is_same_v<T, double>) return {"double", f == "g"};
  else if constexpr (std::is_same_v<T, float>) return {"float", f == "f"};
  // int64, timestamp (any unit and zone: "tsn:UTC"), date64, time64 (us, ns), duration.
  else if constexpr (std::is_same_v<T, int64_t>)
    return {"int64_t", f == "l" || f.substr(0, 2) == "ts" || f == "tdm" || f == "ttu" || f == "ttn" ||
                           (f.size() == 3 && f.substr(0, 2) == "tD")};
  // int32, date32, time32 (s, ms).
  else if constexpr (std::is_same_v<T, int32_t>) return {"int32_t", f == "i" || f == "tdD" || f == "tts" || f == "ttm"};
  else if constexpr (std::is_same_v<T, int16_t>) return {"int16_t", f == "s"};
  else if constexpr (std::is_same_v<T, int8_t>) return {"int8_t", f == "c"};
  else if constexpr (std::is_same_v<T, uint64_t>) return {"uint64_t", f == "L"};
  else if constexpr (std::is_same_v<T, uint32_t>) return {"uint32_t", f == "I"};
  else if constexpr (std::is_same_v<T, uint16_t>) return {"uint16_t", f == "S"};
  else if constexpr (std::is_same_v<T, uint8_t>) return {"uint8_t", f == "C"};
  else static_assert(unsupported_v<T>, "ringfeed::Batch::column<T>: T must be a fixed-width integer, float or double");
}

/// Flattens `symbols` into one buffer + offsets (reused across calls): one
/// bridge call and one UTF-8 check instead of one per row.
template <class Strings>
void flatten(const Strings& symbols, std::vector<char>& data, std::vector<std::uint32_t>& offsets) {
  data.clear();
  offsets.clear();
  offsets.reserve(symbols.size() + 1);
  offsets.push_back(0);
  for (const auto& s : symbols) {
    std::string_view v(s);
    data.insert(data.end(), v.begin(), v.end());
    if (data.size() > std::numeric_limits<std::uint32_t>::max())
      throw TooLarge(ErrorKind::TooLarge, "write_bars: symbols exceed 4 GiB");
    offsets.push_back(static_cast<std::uint32_t>(data.size()));
  }
}

inline bool bit(const std::uint8_t* bitmap, std::size_t offset, std::size_t i) noexcept {
  if (bitmap == nullptr) return true;
  const std::size_t k = offset + i;
  return (bitmap[k >> 3] >> (k & 7)) & 1;
}

/// Where row 0 of column `child` of the struct array `parent` is, how many
/// rows it has, and its validity (C Data Interface: the parent's offset
/// shifts its children too).
struct Slice {
  std::size_t offset = 0;
  std::size_t length = 0;
  const std::uint8_t* validity = nullptr;  // nullptr: no nulls
  std::size_t null_count = 0;
};

inline Slice slice(const ArrowArray& parent, const ArrowArray& child) noexcept {
  Slice s;
  s.offset = static_cast<std::size_t>(child.offset + parent.offset);
  s.length = static_cast<std::size_t>(parent.length);
  const auto* bitmap = child.n_buffers > 0 ? static_cast<const std::uint8_t*>(child.buffers[0]) : nullptr;
  if (bitmap == nullptr || child.null_count == 0) return s;
  if (parent.offset == 0 && child.length == parent.length && child.null_count > 0) {
    s.null_count = static_cast<std::size_t>(child.null_count);
  } else {  // a slice of the child, or a count the producer did not compute (-1)
    for (std::size_t i = 0; i < s.length; ++i) s.null_count += bit(bitmap, s.offset, i) ? 0 : 1;
  }
  if (s.null_count > 0) s.validity = bitmap;
  return s;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Owning wrappers for the C Data Interface structs.

namespace detail {
/// Owns a C Data Interface struct (`ArrowArray`, `ArrowSchema`,
/// `ArrowArrayStream`): calls its release callback on destruction, or on
/// `reset()`. Move-only; a moved-from owner holds a released struct.
template <class C>
class Released {
 public:
  Released() noexcept { raw_.release = nullptr; }
  Released(Released&& o) noexcept : raw_(o.raw_) { o.raw_.release = nullptr; }
  Released& operator=(Released&& o) noexcept {
    if (this != &o) {
      reset();
      raw_ = o.raw_;
      o.raw_.release = nullptr;
    }
    return *this;
  }
  Released(const Released&) = delete;
  Released& operator=(const Released&) = delete;
  ~Released() { reset(); }

  C* get() noexcept { return &raw_; }
  const C* get() const noexcept { return &raw_; }
  C* operator->() noexcept { return &raw_; }
  const C* operator->() const noexcept { return &raw_; }
  /// Whether it holds an unreleased struct.
  explicit operator bool() const noexcept { return raw_.release != nullptr; }
  /// Releases the struct now (an array drops the lease it holds).
  void reset() noexcept {
    if (raw_.release != nullptr) raw_.release(&raw_);
    raw_.release = nullptr;
  }

 private:
  C raw_;
};
}  // namespace detail

/// Owns an `ArrowArray` (and the lease of the batch it was exported from).
using UniqueArray = detail::Released<ArrowArray>;
/// Owns an `ArrowSchema`.
using UniqueSchema = detail::Released<ArrowSchema>;
/// Owns an `ArrowArrayStream`.
using UniqueStream = detail::Released<ArrowArrayStream>;

/// The 7-column OHLCV schema of `Writer::create_bars` and `write_bars` (ts
/// timestamp[ns, UTC], symbol utf8_view, open, high, low, close, volume
/// float64; none nullable; Rust's `ringfeed_arrow::ohlcv_schema()`),
/// exported into `out`. The daemon's stored bars have these columns plus
/// optional ones (quote_volume, trades, ...).
inline void bar_schema(ArrowSchema* out) {
  detail::call([&] { ffi::export_bar_schema(out); });
}

/// The bar schema as an owning wrapper.
inline UniqueSchema bar_schema() {
  UniqueSchema s;
  bar_schema(s.get());
  return s;
}

// ---------------------------------------------------------------------------
// Column views.

/// A fixed-width column of a `Batch`, read in place: `data()` points into the
/// shared-memory arena. Valid while the `Batch` lives (moving the `Batch` is fine).
template <class T>
class Column {
 public:
  using value_type = T;
  using const_iterator = const T*;
  using iterator = const T*;

  Column() = default;

  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  /// The value of row `i`, unchecked (like std::span). Null rows hold unspecified values.
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// The value of row `i`; throws std::out_of_range.
  const T& at(std::size_t i) const {
    if (i >= size_) throw std::out_of_range("ringfeed::Column::at: row out of range");
    return data_[i];
  }
  const T& front() const { return at(0); }
  const T& back() const { return at(size_ - 1); }
  std::size_t null_count() const noexcept { return null_count_; }
  /// Whether row `i` is not null.
  bool is_valid(std::size_t i) const noexcept { return detail::bit(validity_, validity_offset_, i); }

 private:
  friend class Batch;
  /// Over column `child` of the exported struct array `parent` (C Data
  /// Interface: buffer 0 the validity bitmap, buffer 1 the values).
  Column(const ArrowArray& parent, const ArrowArray& child) {
    const detail::Slice s = detail::slice(parent, child);
    const T* values = child.n_buffers > 1 ? static_cast<const T*>(child.buffers[1]) : nullptr;
    data_ = values != nullptr ? values + s.offset : nullptr;
    size_ = values != nullptr ? s.length : 0;
    validity_ = s.validity;
    validity_offset_ = s.offset;
    null_count_ = s.null_count;
  }

  const T* data_ = nullptr;
  std::size_t size_ = 0;
  const std::uint8_t* validity_ = nullptr;
  std::size_t validity_offset_ = 0;
  std::size_t null_count_ = 0;
};

/// A string column (Utf8, LargeUtf8 or Utf8View) read in place. Values are
/// `std::string_view`s into the arena. Valid while the `Batch` lives.
class StringColumn {
 public:
  StringColumn() = default;

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t null_count() const noexcept { return null_count_; }
  bool is_valid(std::size_t i) const noexcept { return detail::bit(validity_, validity_offset_, i); }

  /// The value of row `i` (unchecked row index). Null rows read as "".
  std::string_view operator[](std::size_t i) const {
    switch (layout_) {
      case Layout::Utf8: {
        std::int32_t b, e;
        std::memcpy(&b, base_ + 4 * i, 4);
        std::memcpy(&e, base_ + 4 * (i + 1), 4);
        return {data(0) + b, static_cast<std::size_t>(e - b)};
      }
      case Layout::LargeUtf8: {
        std::int64_t b, e;
        std::memcpy(&b, base_ + 8 * i, 8);
        std::memcpy(&e, base_ + 8 * (i + 1), 8);
        return {data(0) + b, static_cast<std::size_t>(e - b)};
      }
      case Layout::View: {
        // 16-byte view: i32 length, then either the inline bytes (length <=
        // 12) or a 4-byte prefix, i32 buffer index and i32 offset.
        const std::uint8_t* v = base_ + 16 * i;
        std::int32_t len;
        std::memcpy(&len, v, 4);
        if (len <= 12) return {reinterpret_cast<const char*>(v + 4), static_cast<std::size_t>(len)};
        std::int32_t buf, off;
        std::memcpy(&buf, v + 8, 4);
        std::memcpy(&off, v + 12, 4);
        if (buf < 0 || static_cast<std::size_t>(buf) >= n_data_)
          throw Error(ErrorKind::Corrupt, "string view points to a data buffer that does not exist");
        return {data(static_cast<std::size_t>(buf)) + off, static_cast<std::size_t>(len)};
      }
    }
    return {};
  }
  /// The value of row `i`; throws std::out_of_range.
  std::string_view at(std::size_t i) const {
    if (i >= size_) throw std::out_of_range("ringfeed::StringColumn::at: row out of range");
    return (*this)[i];
  }

 private:
  friend class Batch;
  enum class Layout { Utf8, LargeUtf8, View };

  /// Over column `child` (of `layout`) of the exported struct array
  /// `parent`. C Data Interface buffers: validity, then offsets (Utf8: i32,
  /// LargeUtf8: i64) and the one data buffer, or the views, the variadic
  /// data buffers and their sizes (Utf8View).
  StringColumn(const ArrowArray& parent, const ArrowArray& child, Layout layout) : layout_(layout) {
    const detail::Slice s = detail::slice(parent, child);
    const std::size_t width = layout == Layout::Utf8 ? 4 : layout == Layout::LargeUtf8 ? 8 : 16;
    const auto* first = child.n_buffers > 1 ? static_cast<const std::uint8_t*>(child.buffers[1]) : nullptr;
    if (first == nullptr) return;  // no rows
    size_ = s.length;
    base_ = first + width * s.offset;
    data_ = child.buffers + 2;
    n_data_ = layout == Layout::View ? static_cast<std::size_t>(child.n_buffers) - 3 : 1;
    validity_ = s.validity;
    validity_offset_ = s.offset;
    null_count_ = s.null_count;
  }
  const char* data(std::size_t k) const noexcept {
    const char* p = static_cast<const char*>(data_[k]);
    return p != nullptr ? p : "";
  }

  Layout layout_ = Layout::Utf8;
  std::size_t size_ = 0;
  const std::uint8_t* base_ = nullptr;
  /// The data buffers' addresses, inside the exported array (owned by the `Batch`).
  const void* const* data_ = nullptr;
  std::size_t n_data_ = 0;
  const std::uint8_t* validity_ = nullptr;
  std::size_t validity_offset_ = 0;
  std::size_t null_count_ = 0;
};

// ---------------------------------------------------------------------------
// Batch.

/// One record batch read from a ring. Its buffers live in the shared-memory
/// arena and it holds the slot's lease until it (and every export) is gone.
///
/// Column views are header code over the batch's Arrow C Data Interface
/// export: the first view (or `column_name`, `column_index`) exports the
/// batch once and the `Batch` keeps the export, so views cost no call into
/// Rust after that. Like every handle, use a `Batch` (also its const
/// methods) from one thread at a time.
class Batch {
 public:
  Batch(Batch&&) noexcept = default;
  Batch& operator=(Batch&&) noexcept = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  /// Sequence number, 1-based, gap-free per ring.
  std::uint64_t seq() const { return h_.get("Batch").seq(); }
  /// Publish time, ns since the Unix epoch (CLOCK_REALTIME).
  std::uint64_t ts_ns() const { return h_.get("Batch").ts_ns(); }
  std::size_t num_rows() const { return h_.get("Batch").num_rows(); }
  std::size_t num_columns() const { return h_.get("Batch").num_columns(); }
  std::string column_name(std::size_t i) const { return exported().schema->children[check(i)]->name; }
  /// The Arrow type of column `i`, e.g. "Timestamp(ns, \"UTC\")".
  std::string column_type(std::size_t i) const {
    return std::string(detail::call([&] { return h_.get("Batch").column_type(i); }));
  }
  /// Index of the column called `name`; throws `Error` (InvalidArgument) if there is none.
  std::size_t column_index(std::string_view name) const {
    const ArrowSchema& s = *exported().schema.get();
    for (std::int64_t i = 0; i < s.n_children; ++i)
      if (name == s.children[i]->name) return static_cast<std::size_t>(i);
    std::string have;
    for (std::int64_t i = 0; i < s.n_children; ++i)
      have += std::string(i == 0 ? "\"" : ", \"") + s.children[i]->name + "\"";
    throw Error(ErrorKind::InvalidArgument,
                "no column named \"" + std::string(name) + "\"; the batch has [" + have + "]");
  }

  /// A fixed-width column read in place as `T`: double (float64), float,
  /// int64_t (int64, timestamp, date64, time64, duration), int32_t (int32,
  /// date32, time32), int8/16_t, uint8/16/32/64_t. Throws `SchemaMismatch`
  /// if the column has another type.
  template <class T>
  Column<T> column(std::size_t i) const {
    const Exported& e = exported();
    const detail::ReadsAs as = detail::reads_as<T>(e.schema->children[check(i)]->format);
    if (!as.ok)
      throw SchemaMismatch(ErrorKind::SchemaMismatch, "column \"" + column_name(i) + "\" is " + column_type(i) +
                                                          ", which cannot be read as " + as.type);
    return Column<T>(*e.array.get(), *e.array->children[i]);
  }
  template <class T>
  Column<T> column(std::string_view name) const {
    return column<T>(column_index(name));
  }

  /// A string column (Utf8, LargeUtf8, Utf8View) read in place.
  StringColumn strings(std::size_t i) const {
    const Exported& e = exported();
    const std::string_view f = e.schema->children[check(i)]->format;
    StringColumn::Layout layout;
    if (f == "u") {
      layout = StringColumn::Layout::Utf8;
    } else if (f == "U") {
      layout = StringColumn::Layout::LargeUtf8;
    } else if (f == "vu") {
      layout = StringColumn::Layout::View;
    } else {
      throw SchemaMismatch(ErrorKind::SchemaMismatch, "column \"" + column_name(i) + "\" is " + column_type(i) +
                                                          ", not a string column (Utf8, LargeUtf8 or Utf8View)");
    }
    return StringColumn(*e.array.get(), *e.array->children[i], layout);
  }
  StringColumn strings(std::string_view name) const { return strings(column_index(name)); }

  /// Exports the batch as a struct array (C Data Interface). The array holds
  /// the lease until `out_array->release` is called; release the schema too.
  void export_to(ArrowArray* out_array, ArrowSchema* out_schema) const {
    detail::call([&] { h_.get("Batch").export_array(out_array, out_schema); });
  }
  /// The same, into owning wrappers.
  std::pair<UniqueArray, UniqueSchema> export_arrow() const {
    std::pair<UniqueArray, UniqueSchema> out;
    export_to(out.first.get(), out.second.get());
    return out;
  }
  /// Exports a one-batch `ArrowArrayStream` (C Stream Interface).
  void export_stream(ArrowArrayStream* out) const {
    detail::call([&] { h_.get("Batch").export_stream(out); });
  }

  /// The address range of the arena's buffer pool, for zero-copy checks.
  std::pair<std::uintptr_t, std::uintptr_t> arena_range() const {
    auto r = h_.get("Batch").arena_range();
    return {r.begin, r.end};
  }
  /// Whether `p` points into the arena.
  bool in_arena(const void* p) const {
    auto r = arena_range();
    auto a = reinterpret_cast<std::uintptr_t>(p);
    return a >= r.first && a < r.second;
  }
  /// Whether every buffer of every column lies inside the arena (no copy was made).
  bool is_zero_copy() const { return h_.get("Batch").is_zero_copy(); }

  /// Another handle to the same batch (and the same lease; no copy, no new pin).
  Batch clone() const { return Batch(h_.get("Batch").duplicate()); }

 private:
  friend class Reader;
  friend class Bars;
  friend class Replay;
  explicit Batch(rust::Box<ffi::RustBatch> b) : h_(std::move(b)) {}

  /// The batch's own export, which the column views read.
  struct Exported {
    UniqueArray array;
    UniqueSchema schema;
  };
  const Exported& exported() const {
    if (!exported_.array) {
      Exported e;
      export_to(e.array.get(), e.schema.get());
      if (e.array->n_children != e.schema->n_children)
        throw Error(ErrorKind::Corrupt, "the exported batch's array and schema disagree on the number of columns");
      exported_ = std::move(e);
    }
    return exported_;
  }
  std::size_t check(std::size_t i) const {
    const auto n = static_cast<std::size_t>(exported().schema->n_children);
    if (i >= n)
      throw Error(ErrorKind::InvalidArgument, "column index " + std::to_string(i) +
                                                  " is out of range: the batch has " + std::to_string(n) + " columns");
    return i;
  }

  detail::Handle<ffi::RustBatch> h_;
  mutable Exported exported_;
};

// ---------------------------------------------------------------------------
// Reader.

/// Where a new reader starts.
enum class StartAt {
  /// The oldest batch still in the ring.
  Oldest,
  /// The newest batch in the ring (or the first one, if none yet).
  Latest,
  /// Only batches published after the open.
  Next,
};

struct ReaderOptions {
  StartAt start = StartAt::Latest;
  /// Busy-poll this long before sleeping on the futex (0: sleep at once).
  std::chrono::microseconds spin{0};
  /// Attach even if the arena belongs to another user.
  bool allow_foreign_owner = false;
};

/// Reads the batches of one ring, at its own pace. Move-only; detaches on destruction
/// (batches and exports already taken stay valid).
class Reader {
 public:
  /// Attaches to ring `name`. Throws `NotFound` if it does not exist.
  explicit Reader(std::string_view name, StartAt start = StartAt::Latest)
      : Reader(name, ReaderOptions{start, std::chrono::microseconds(0), false}) {}
  Reader(std::string_view name, const ReaderOptions& opts) : h_(open_box(name, opts)) {}
  static Reader open(std::string_view name, StartAt start = StartAt::Latest) { return Reader(name, start); }
  static Reader open(std::string_view name, const ReaderOptions& opts) { return Reader(name, opts); }

  Reader(Reader&&) noexcept = default;
  Reader& operator=(Reader&&) noexcept = default;
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  /// Waits up to `timeout` for the next batch; `std::nullopt` on timeout.
  /// Throws `Lagged` (then goes on from the oldest batch), `Closed` once the
  /// writer closed the ring and everything was read, `WriterGone`, `TooManyLeases`.
  std::optional<Batch> read(std::chrono::milliseconds timeout) {
    auto b = detail::call([&] { return h_.get("Reader").read(detail::millis(timeout)); });
    if (!b->present()) return std::nullopt;
    return Batch(std::move(b));
  }
  /// The next batch if one is ready; never blocks.
  std::optional<Batch> try_read() {
    auto b = detail::call([&] { return h_.get("Reader").try_read(); });
    if (!b->present()) return std::nullopt;
    return Batch(std::move(b));
  }

  /// The seq the next read returns.
  std::uint64_t cursor() const { return h_.get("Reader").cursor(); }
  /// The newest seq the writer published.
  std::uint64_t write_seq() const { return h_.get("Reader").write_seq(); }
  /// Batches (and exports of them) this reader holds right now.
  std::uint32_t leases() const { return h_.get("Reader").leases(); }
  bool writer_alive() const { return h_.get("Reader").writer_alive(); }
  std::string name() const { return std::string(h_.get("Reader").name()); }
  /// The ring's schema (C Data Interface).
  void export_schema(ArrowSchema* out) const {
    detail::call([&] { h_.get("Reader").export_schema(out); });
  }

 private:
  friend class Client;
  explicit Reader(rust::Box<ffi::RustReader> b) : h_(std::move(b)) {}
  static ffi::Start start(StartAt s) {
    return s == StartAt::Oldest ? ffi::Start::Oldest : s == StartAt::Next ? ffi::Start::Next : ffi::Start::Latest;
  }
  static rust::Box<ffi::RustReader> open_box(std::string_view name, const ReaderOptions& o) {
    ffi::ReaderConfig cfg;
    cfg.start = start(o.start);
    cfg.spin_us = o.spin.count() < 0 ? 0 : static_cast<std::uint64_t>(o.spin.count());
    cfg.allow_foreign_owner = o.allow_foreign_owner;
    return detail::call([&] { return ffi::reader_open(detail::str(name), cfg); });
  }
  detail::Handle<ffi::RustReader> h_;
};

// ---------------------------------------------------------------------------
// Writer.

/// Sizing and policy of a new ring.
struct RingOptions {
  /// Batches the ring keeps.
  std::uint32_t slots = 8;
  /// Largest encoded batch a slot holds, bytes (rounded up to 4 KiB).
  std::uint64_t slot_bytes = 1 << 20;
  /// Readers that may attach at once.
  std::uint32_t max_readers = 8;
  /// Batches one reader may hold at once.
  std::uint32_t leases_per_reader = 4;
  /// Buffers in the pool; 0 = slots + max_readers * leases_per_reader + 1.
  std::uint32_t buffers = 0;
  /// Unset: overwrite the oldest batch when full (readers that fall behind
  /// get `Lagged`). Set: block up to this long for the slowest reader (lossless).
  std::optional<std::chrono::milliseconds> block;
  /// Capacity of the schema block, bytes.
  std::uint32_t meta_cap = 64 << 10;
  /// Replace an existing arena of the same name.
  bool force = false;
  /// Store string columns in the layout the schema gives. By default (false)
  /// the ring stores Utf8 and LargeUtf8 columns as Utf8View (and binary as
  /// BinaryView), as in Rust and Python: readers such as polars take views
  /// without a copy. Batches may come in either layout; they are converted
  /// on write.
  bool strings_as_given = false;
};

/// Publishes record batches of one schema into a new ring. Move-only; the
/// destructor closes the ring (readers drain it, then see `Closed`).
class Writer {
 public:
  /// Creates ring `name` for batches of `schema` (a struct schema; borrowed, not released).
  /// String columns are stored as Utf8View unless `opts.strings_as_given`
  /// (`export_schema` gives the stored schema).
  static Writer create(std::string_view name, const ArrowSchema& schema, const RingOptions& opts = {}) {
    auto cfg = config(opts);
    return Writer(detail::call([&] { return ffi::writer_create(detail::str(name), &schema, cfg); }));
  }
  /// Creates ring `name` with the bar schema (see `bar_schema`).
  static Writer create_bars(std::string_view name, const RingOptions& opts = {}) {
    auto cfg = config(opts);
    return Writer(detail::call([&] { return ffi::writer_create_bars(detail::str(name), cfg); }));
  }

  Writer(Writer&&) noexcept = default;
  Writer& operator=(Writer&&) noexcept = default;
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  /// Publishes a struct array (one child per column, in the ring's column
  /// order, with its names). `*array` is moved in: it is released when this
  /// returns, whether it succeeds or throws. `schema` describes it
  /// (borrowed); nullptr means the schema the ring was created with. The
  /// rule is the one Rust and Python apply: the data are fully validated
  /// (UTF-8, offsets, views, null counts; `Error` of kind InvalidArgument
  /// names a bad column), a column in another layout of the same logical
  /// type is converted (e.g. Utf8 to the ring's Utf8View), anything else
  /// throws `SchemaMismatch`. Then it is copied once into a slot. Returns
  /// the batch's seq.
  std::uint64_t write(ArrowArray* array, const ArrowSchema* schema = nullptr) {
    return detail::call([&] { return h_.get("Writer").write_arrow(array, schema); });
  }
  /// Same, from owning wrappers.
  std::uint64_t write(UniqueArray array, const UniqueSchema& schema) {
    return write(array.get(), schema.get());
  }

  /// Publishes one bar batch from plain columns (a ring made by `create_bars`).
  /// All columns must have the same length. Returns the batch's seq.
  std::uint64_t write_bars(const std::vector<std::int64_t>& ts, const std::vector<std::string>& symbols,
                           const std::vector<double>& open, const std::vector<double>& high,
                           const std::vector<double>& low, const std::vector<double>& close,
                           const std::vector<double>& volume) {
    return write_bars<std::vector<std::string>>(ts, symbols, open, high, low, close, volume);
  }
  /// The same with any container of string-likes (e.g. std::vector<std::string_view>).
  template <class Strings>
  std::uint64_t write_bars(const std::vector<std::int64_t>& ts, const Strings& symbols,
                           const std::vector<double>& open, const std::vector<double>& high,
                           const std::vector<double>& low, const std::vector<double>& close,
                           const std::vector<double>& volume) {
    detail::flatten(symbols, sym_data_, sym_offsets_);
    using S = rust::Slice<const double>;
    return detail::call([&] {
      return h_.get("Writer").write_bars(
          rust::Slice<const std::int64_t>(ts.data(), ts.size()),
          rust::Slice<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(sym_data_.data()), sym_data_.size()),
          rust::Slice<const std::uint32_t>(sym_offsets_.data(), sym_offsets_.size()), S(open.data(), open.size()),
          S(high.data(), high.size()), S(low.data(), low.size()), S(close.data(), close.size()),
          S(volume.data(), volume.size()));
    });
  }

  /// Waits until `n` readers are attached; false on timeout.
  bool wait_for_readers(std::size_t n, std::chrono::milliseconds timeout) {
    return detail::call([&] { return h_.get("Writer").wait_for_readers(n, detail::millis(timeout)); });
  }
  /// Frees the rows and pins of readers whose process died (normally done
  /// lazily, when the writer runs short of buffers). Returns how many.
  std::uint32_t sweep_dead_readers() {
    return detail::call([&] { return h_.get("Writer").sweep_dead_readers(); });
  }
  /// The seq the next write gets.
  std::uint64_t next_seq() const { return h_.get("Writer").next_seq(); }
  /// Largest encoded batch one slot holds.
  std::uint64_t slot_bytes() const { return h_.get("Writer").slot_bytes(); }
  std::string name() const { return std::string(h_.get("Writer").name()); }
  /// The ring's schema (C Data Interface).
  void export_schema(ArrowSchema* out) const {
    detail::call([&] { h_.get("Writer").export_schema(out); });
  }
  /// Closes the ring now and removes its name; readers drain what is left, then
  /// see `Closed`. Later writes throw `Closed`.
  void close() {
    detail::call([&] { h_.get("Writer").close(); });
  }

 private:
  explicit Writer(rust::Box<ffi::RustWriter> b) : h_(std::move(b)) {}
  static ffi::RingConfig config(const RingOptions& o) {
    ffi::RingConfig c;
    c.slots = o.slots;
    c.slot_bytes = o.slot_bytes;
    c.max_readers = o.max_readers;
    c.leases_per_reader = o.leases_per_reader;
    c.buffers = o.buffers;
    c.block_ms = o.block ? static_cast<std::int64_t>(detail::millis(*o.block)) : -1;
    c.meta_cap = o.meta_cap;
    c.force = o.force;
    c.strings_as_given = o.strings_as_given;
    return c;
  }
  detail::Handle<ffi::RustWriter> h_;
  std::vector<char> sym_data_;
  std::vector<std::uint32_t> sym_offsets_;
};

// ---------------------------------------------------------------------------
// The daemon client.

/// A point in time: ns since the Unix epoch (UTC), or text the daemon parses:
/// "YYYY-MM-DD" (UTC midnight), "YYYY-MM-DD HH:MM[:SS]" (UTC) or RFC 3339.
class Time {
 public:
  // Implicit on purpose: `q.start = "2021-01-01";`, `q.end = t0 + 60'000'000'000;`.
  template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  Time(I ns) : ns_(static_cast<std::int64_t>(ns)) {}
  Time(std::string_view text) : text_(text), is_text_(true) {}
  Time(const std::string& text) : Time(std::string_view(text)) {}
  Time(const char* text) : Time(std::string_view(text)) {}

  bool is_text() const noexcept { return is_text_; }
  std::int64_t ns() const noexcept { return ns_; }
  const std::string& text() const noexcept { return text_; }

 private:
  friend class Client;
  ffi::TimeArg arg() const {
    ffi::TimeArg a;
    a.kind = is_text_ ? ffi::TimeKind::Text : ffi::TimeKind::Nanos;
    a.ns = ns_;
    a.text = rust::String(text_);
    return a;
  }
  std::int64_t ns_ = 0;
  std::string text_;
  bool is_text_ = false;
};

/// A bars query: `Client::bars`.
struct Query {
  std::string dataset;
  /// Empty: all symbols.
  std::vector<std::string> symbols;
  /// Stored ("1m", "5m", ...) or any other interval, resampled on read ("7m").
  std::string timeframe = "1m";
  /// First bar included; unset: from the first stored.
  std::optional<Time> start;
  /// First bar excluded; unset: to the last stored.
  std::optional<Time> end;
  /// Columns besides ts and symbol; empty: all.
  std::vector<std::string> fields;
  /// At most this many bars per symbol...
  std::optional<std::size_t> limit;
  /// ...taken from the end.
  bool from_end = false;
  /// Bucket offset for resampling, e.g. "15m"; empty: none.
  std::string offset;
};

/// A query answer: record batches mapped from the daemon's shared-memory
/// arena (no copy). Each `Batch` holds its slot's lease; the data stay
/// readable while any of them (or an export of them) lives, even after the
/// `Client` is gone or the daemon stopped. Move-only.
class Bars {
 public:
  Bars(Bars&&) noexcept = default;
  Bars& operator=(Bars&&) noexcept = default;
  Bars(const Bars&) = delete;
  Bars& operator=(const Bars&) = delete;

  /// The batches, in order (time, then symbol, as the store holds them).
  const std::vector<Batch>& batches() const noexcept { return batches_; }
  std::vector<Batch>::const_iterator begin() const noexcept { return batches_.begin(); }
  std::vector<Batch>::const_iterator end() const noexcept { return batches_.end(); }
  std::size_t num_batches() const noexcept { return batches_.size(); }
  const Batch& operator[](std::size_t i) const { return batches_.at(i); }
  /// Total rows of all batches.
  std::uint64_t num_rows() const { return h_.get("Bars").rows(); }
  /// Whether the daemon answered from its cache (an identical query mapped the same arena).
  bool cached() const { return h_.get("Bars").cached(); }
  /// The arena that holds the result.
  std::string arena() const { return std::string(h_.get("Bars").arena()); }
  /// Whether every buffer of every batch lies inside the arena.
  bool is_zero_copy() const {
    for (const Batch& b : batches_)
      if (!b.is_zero_copy()) return false;
    return true;
  }
  /// Exports all batches as one `ArrowArrayStream` (C Stream Interface); the
  /// arrays it yields hold their leases until released.
  void export_stream(ArrowArrayStream* out) const {
    detail::call([&] { h_.get("Bars").export_stream(out); });
  }
  UniqueStream export_stream() const {
    UniqueStream s;
    export_stream(s.get());
    return s;
  }

 private:
  friend class Client;
  explicit Bars(rust::Box<ffi::RustBars> b) : h_(std::move(b)) {
    const auto& bars = h_.get("Bars");
    const std::size_t n = bars.num_batches();
    batches_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) batches_.push_back(Batch(detail::call([&] { return bars.batch(i); })));
  }
  detail::Handle<ffi::RustBars> h_;
  std::vector<Batch> batches_;
};

/// A subscription that replays the stored bars from a time, then goes on with
/// the live batches, with no gap and no duplicate where one meets the other
/// (`Client::replay`). Move-only.
class Replay {
 public:
  Replay(Replay&&) noexcept = default;
  Replay& operator=(Replay&&) noexcept = default;
  Replay(const Replay&) = delete;
  Replay& operator=(const Replay&) = delete;

  /// The next batch: history first (oldest first), then live ones;
  /// `std::nullopt` if no live batch arrives within `timeout`. Throws
  /// `Closed` when the daemon closed the topic (it stopped), `Lagged` if
  /// this reader fell behind the live ring (a gap: start a new replay).
  std::optional<Batch> read(std::chrono::milliseconds timeout) {
    auto b = detail::call([&] { return h_.get("Replay").read(detail::millis(timeout)); });
    if (!b->present()) return std::nullopt;
    return Batch(std::move(b));
  }
  /// The first live topic seq after the history (live batches below it were skipped).
  std::uint64_t seam() const { return h_.get("Replay").seam(); }
  /// Rows in the history part.
  std::uint64_t history_rows() const { return h_.get("Replay").history_rows(); }
  /// Whether history batches remain to be read.
  bool in_history() const { return h_.get("Replay").in_history(); }
  /// The live topic ring's arena name.
  std::string live_name() const { return std::string(h_.get("Replay").live_name()); }

 private:
  friend class Client;
  explicit Replay(rust::Box<ffi::RustReplay> b) : h_(std::move(b)) {}
  detail::Handle<ffi::RustReplay> h_;
};

/// A connection to the `ringfeedd` daemon: queries land as batches that point
/// into the daemon's shared memory; subscriptions are ring `Reader`s.
/// Move-only; one request at a time (use one Client per thread).
///
///   ringfeed::Client c;                                   // $RINGFEED_SOCKET or the default
///   ringfeed::Query q{"crypto", {"BTCUSDT"}, "1h"};
///   q.start = "2021-01-01";
///   auto bars = c.bars(q);
///   for (const auto& b : bars) use(b.column<double>("close"));
///   auto live = c.subscribe("crypto", "1m");              // a Reader of the live topic
class Client {
 public:
  /// Connects to the daemon at `socket`; empty: `$RINGFEED_SOCKET`, else the
  /// daemon's default path. Throws `ConnectError` if none listens there.
  explicit Client(std::string_view socket = {})
      : h_(detail::call([&] { return ffi::client_connect(detail::str(socket)); })) {}
  static Client connect(std::string_view socket = {}) { return Client(socket); }

  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// One round trip; throws `ConnectError` if the daemon is gone.
  void ping() {
    detail::call([&] { h_.get("Client").ping(); });
  }
  /// The daemon's metrics (Prometheus text, as `ringfeed stat` prints).
  std::string stat() { return std::string(detail::call([&] { return h_.get("Client").stat(); })); }
  /// Datasets with their timeframes and symbols, as JSON text.
  std::string datasets() { return std::string(detail::call([&] { return h_.get("Client").datasets(); })); }
  /// Whether the daemon serves queries and appends, and how far each dataset's data goes
  /// (first/last bar per stored timeframe, hot days, symbols), as JSON text; `dataset`
  /// empty: every dataset. Throws `DaemonError` ("unknown_dataset") for an unknown one.
  std::string ready(std::string_view dataset = {}) {
    return std::string(detail::call([&] { return h_.get("Client").ready(detail::str(dataset)); }));
  }
  /// Creates `dataset` through the daemon with base timeframe `base` and `rollups`
  /// ("5m,1h,1d"; empty: the ladder 5m, 15m, 1h, 1d above the base; "none": none). The
  /// same settings again are a no-op. Returns the daemon's summary.
  std::string create_dataset(std::string_view dataset, std::string_view base = "1m", std::string_view rollups = {}) {
    return std::string(detail::call([&] {
      return h_.get("Client").create_dataset(detail::str(dataset), detail::str(base), detail::str(rollups));
    }));
  }
  /// Asks the daemon to write finished days down to Parquet now: days before `before`
  /// ("YYYY-MM-DD"; empty: before today), or every day with `all`, of `dataset` (empty: all).
  /// The daemon also does this after each UTC midnight. Returns its summary.
  std::string write_down(std::string_view dataset = {}, std::string_view before = {}, bool all = false) {
    return std::string(detail::call(
        [&] { return h_.get("Client").write_down(detail::str(dataset), detail::str(before), all); }));
  }
  /// Deletes the bars of `symbol` (empty: every symbol) in [start, end): a correction; the
  /// rollups follow and cached results it changes are dropped (live topics are not told).
  std::string delete_range(std::string_view dataset, const Time& start, const Time& end,
                           std::string_view symbol = {}) {
    return std::string(detail::call([&] {
      auto s = start.arg();
      auto e = end.arg();
      return h_.get("Client").delete_range(detail::str(dataset), detail::str(symbol), s, e);
    }));
  }

  /// Runs a query. Throws `DaemonError` ("unknown_dataset", "bad_timeframe", ...).
  Bars bars(const Query& q) {
    return Bars(detail::call([&] {
      ffi::QueryArgs a;  // rust::String throws std::invalid_argument on non-UTF-8: inside call()
      a.dataset = rust::String(q.dataset);
      a.symbols = strings(q.symbols);
      a.timeframe = rust::String(q.timeframe);
      a.offset = rust::String(q.offset);
      a.start = time(q.start);
      a.end = time(q.end);
      a.fields = strings(q.fields);
      a.has_limit = q.limit.has_value();
      a.limit = q.limit ? static_cast<std::uint64_t>(*q.limit) : 0;
      a.from_end = q.from_end;
      return h_.get("Client").bars(a);
    }));
  }
  /// All bars of `symbol` (empty: every symbol) at `timeframe`, from `start` (included) to `end` (excluded).
  Bars bars(std::string_view dataset, std::string_view symbol, std::string_view timeframe,
            std::optional<Time> start = std::nullopt, std::optional<Time> end = std::nullopt) {
    Query q;
    q.dataset = std::string(dataset);
    if (!symbol.empty()) q.symbols.emplace_back(symbol);
    q.timeframe = std::string(timeframe);
    q.start = std::move(start);
    q.end = std::move(end);
    return bars(q);
  }

  /// A reader of the live topic ring of (dataset, timeframe): every append
  /// (base timeframe) or rollup update is one batch. Throws `DaemonError`.
  Reader subscribe(std::string_view dataset, std::string_view timeframe, StartAt start = StartAt::Next) {
    return Reader(
        detail::call([&] { return h_.get("Client").subscribe(detail::str(dataset), detail::str(timeframe), Reader::start(start)); }));
  }
  /// The stored bars of (dataset, timeframe) from `start` (of `symbols`; empty:
  /// all), then every live batch (all symbols), with no gap and no duplicate.
  Replay replay(std::string_view dataset, std::string_view timeframe, const Time& start,
                const std::vector<std::string>& symbols = {}) {
    return Replay(detail::call([&] {
      auto syms = strings(symbols);
      auto t = start.arg();
      return h_.get("Client").replay(detail::str(dataset), detail::str(timeframe), t, syms);
    }));
  }

  /// Appends rows (a struct array: ts, symbol, open, high, low, close, volume
  /// at least, as `bar_schema()`) at the dataset's base timeframe; returns the
  /// rows stored, once durable and published. `*array` is moved in (released
  /// when this returns); `schema` describes it (borrowed). The data are fully
  /// validated first.
  std::uint64_t append(std::string_view dataset, ArrowArray* array, const ArrowSchema* schema) {
    return detail::call([&] { return h_.get("Client").append_arrow(detail::str(dataset), array, schema); });
  }
  std::uint64_t append(std::string_view dataset, UniqueArray array, const UniqueSchema& schema) {
    return append(dataset, array.get(), schema.get());
  }
  /// Appends bars from plain columns (as `Writer::write_bars`; ts in ns UTC).
  template <class Strings = std::vector<std::string>>
  std::uint64_t append_bars(std::string_view dataset, const std::vector<std::int64_t>& ts, const Strings& symbols,
                            const std::vector<double>& open, const std::vector<double>& high,
                            const std::vector<double>& low, const std::vector<double>& close,
                            const std::vector<double>& volume) {
    detail::flatten(symbols, sym_data_, sym_offsets_);
    using S = rust::Slice<const double>;
    return detail::call([&] {
      return h_.get("Client").append_bars(
          detail::str(dataset), rust::Slice<const std::int64_t>(ts.data(), ts.size()),
          rust::Slice<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(sym_data_.data()), sym_data_.size()),
          rust::Slice<const std::uint32_t>(sym_offsets_.data(), sym_offsets_.size()), S(open.data(), open.size()),
          S(high.data(), high.size()), S(low.data(), low.size()), S(close.data(), close.size()),
          S(volume.data(), volume.size()));
    });
  }

 private:
  static rust::Vec<rust::String> strings(const std::vector<std::string>& v) {
    rust::Vec<rust::String> out;
    out.reserve(v.size());
    for (const auto& s : v) out.push_back(rust::String(s));
    return out;
  }
  static ffi::TimeArg time(const std::optional<Time>& t) {
    if (t) return t->arg();
    ffi::TimeArg a;
    a.kind = ffi::TimeKind::Unset;
    a.ns = 0;
    return a;
  }
  detail::Handle<ffi::RustClient> h_;
  std::vector<char> sym_data_;
  std::vector<std::uint32_t> sym_offsets_;
};

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
