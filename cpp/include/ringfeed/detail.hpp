// Internals of the binding: calling into Rust, the handle and C-struct owners, bitmaps.
// Part of ringfeed.hpp (include that): see it for the overview, ownership,
// errors and threads.
#pragma once

#include "ringfeed/error.hpp"

namespace ringfeed {

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

}  // namespace ringfeed
