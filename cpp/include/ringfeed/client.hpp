// The ringfeedd client: Time, Query, Bars, Replay, Client.
// Part of ringfeed.hpp (include that): see it for the overview, ownership,
// errors and threads.
#pragma once

#include "ringfeed/ring.hpp"

namespace ringfeed {

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
  /// First day of the week of week timeframes ("sun", "mon", ...); empty: the dataset's.
  std::string week_start;
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
      a.week_start = rust::String(q.week_start);
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

}  // namespace ringfeed
