// Rings: column views, Batch, Reader, Writer.
// Part of ringfeed.hpp (include that): see it for the overview, ownership,
// errors and threads.
#pragma once

#include "ringfeed/detail.hpp"

namespace ringfeed {

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

/// How much of each batch a reader checks before handing it out.
enum class Validate {
  /// Structure only, O(columns): the ring is this user's, mode 0400 and
  /// mapped read-only by readers, so only its writer wrote the values.
  Trusted,
  /// Every value too, O(rows): offsets, string views, dictionary keys and
  /// UTF-8, for rings written by less trusted writers. A bad batch throws an
  /// `Error` of kind `ErrorKind::Corrupt` and the reader goes on.
  Full,
};

struct ReaderOptions {
  StartAt start = StartAt::Latest;
  /// Busy-poll this long before sleeping on the futex (0: sleep at once).
  std::chrono::microseconds spin{0};
  /// Attach even if the arena belongs to another user (implies `Validate::Full`).
  bool allow_foreign_owner = false;
  /// See `Validate`.
  Validate validate = Validate::Trusted;
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
    cfg.validate_full = o.validate == Validate::Full;
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

}  // namespace ringfeed
