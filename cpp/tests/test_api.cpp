// In-process tests of the C++ API: write and read bars, the generic Arrow
// C Data Interface paths, typed column views, exports, and every error path.
#include "common.hpp"

using namespace std::chrono_literals;
using rftest::make_struct;

namespace {

ringfeed::RingOptions small(std::uint32_t slots = 4) {
  ringfeed::RingOptions o;
  o.slots = slots;
  o.slot_bytes = 1 << 16;
  o.max_readers = 4;
  return o;
}

void bars_round_trip() {
  auto name = rftest::unique_name("bars");
  auto w = ringfeed::Writer::create_bars(name, small());
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
  RF_CHECK(w.name() == name && r.name() == name);
  RF_CHECK(w.next_seq() == 1);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) RF_CHECK(rftest::write_bars(w, rftest::bars(seq, 10 + seq)) == seq);
  RF_CHECK(r.write_seq() == 3);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    auto b = r.read(2s);
    RF_CHECK(b.has_value());
    if (!b) return;
    RF_CHECK(b->seq() == seq);
    RF_CHECK(b->num_rows() == 10 + seq);
    RF_CHECK(b->num_columns() == 7);
    RF_CHECK(b->ts_ns() > 1'600'000'000'000'000'000ull);
    RF_CHECK_MSG(rftest::verify_bars(*b, seq).empty(), "%s", rftest::verify_bars(*b, seq).c_str());
    RF_CHECK(b->is_zero_copy());
    RF_CHECK(rftest::columns_in_arena(*b));
    RF_CHECK(b->column_name(5) == "close");
    RF_CHECK_MSG(b->column_type(0) == "Timestamp(ns, \"UTC\")", "%s", b->column_type(0).c_str());
    RF_CHECK(b->column_type(1) == "Utf8View");
    auto close = b->column<double>("close");
    RF_CHECK(close.back() == rftest::bar_open(seq, b->num_rows() - 1) + 0.25);
    double sum = 0;
    for (double c : close) sum += c;
    RF_CHECK(sum > 0);
    RF_CHECK(b->in_arena(close.data()));
    RF_CHECK(close.is_valid(0) && close.null_count() == 0);
    auto ts = b->column<std::int64_t>(0);
    RF_CHECK(ts.front() == rftest::bar_ts(seq, 0));
    RF_CHECK(b->strings("symbol").at(2) == "S2");
  }
  RF_CHECK(!r.try_read().has_value());
  auto t0 = rftest::monotonic_ns();
  RF_CHECK(!r.read(30ms).has_value());
  RF_CHECK(rftest::monotonic_ns() - t0 >= 25'000'000ull);
  RF_CHECK(r.leases() == 0);
  RF_CHECK(r.writer_alive());
}

// A reader that checks every value reads a ring's batches as the trusting one does.
void full_validation_reads_valid_batches() {
  auto name = rftest::unique_name("full");
  auto w = ringfeed::Writer::create_bars(name, small());
  ringfeed::ReaderOptions o;
  o.start = ringfeed::StartAt::Oldest;
  o.validate = ringfeed::Validate::Full;
  ringfeed::Reader r(name, o);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) RF_CHECK(rftest::write_bars(w, rftest::bars(seq, 100)) == seq);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    auto b = r.read(2s);
    RF_CHECK(b.has_value());
    if (!b) return;
    RF_CHECK(b->seq() == seq);
    RF_CHECK_MSG(rftest::verify_bars(*b, seq).empty(), "%s", rftest::verify_bars(*b, seq).c_str());
    RF_CHECK(b->is_zero_copy());
  }
}

void write_bars_symbols() {
  auto name = rftest::unique_name("symbols");
  auto w = ringfeed::Writer::create_bars(name, small());
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
  const std::vector<std::string_view> sym = {"BTCUSDT", "", "a symbol longer than twelve bytes", "\xc3\xa9t\xc3\xa9"};
  const std::vector<std::int64_t> ts = {1, 2, 3, 4};
  const std::vector<double> x = {1, 2, 3, 4};
  RF_CHECK(w.write_bars(ts, sym, x, x, x, x, x) == 1);
  auto b = r.read(2s);
  RF_CHECK(b.has_value());
  if (!b) return;
  auto s = b->strings("symbol");
  for (std::size_t i = 0; i < sym.size(); ++i) RF_CHECK(s[i] == sym[i]);
  RF_CHECK(b->is_zero_copy() && b->in_arena(s[2].data()));
  const std::vector<std::string> bad = {"ok", "\xff\xfe", "ok", "ok"};
  RF_EXPECT_THROW(ringfeed::Error, "not UTF-8", w.write_bars(ts, bad, x, x, x, x, x));
}

void generic_writer_round_trip() {
  // The ring's schema comes in as an ArrowSchema, the batches as ArrowArrays
  // built by a C++ producer (no Rust, no libarrow on this side).
  auto name = rftest::unique_name("generic");
  auto schema = ringfeed::bar_schema();
  auto w = ringfeed::Writer::create(name, *schema.get(), small());
  RF_CHECK(schema);  // borrowed, not released
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
  {
    auto arr = rftest::bars_arrow(1, 100);
    RF_CHECK(w.write(arr.first.get(), arr.second.get()) == 1);
    RF_CHECK(!arr.first);  // moved in: released by the writer
  }
  {
    auto arr = rftest::bars_arrow(2, 5);
    RF_CHECK(w.write(arr.first.get()) == 2);  // nullptr schema = the ring's
  }
  for (std::uint64_t seq = 1; seq <= 2; ++seq) {
    auto b = r.read(2s);
    RF_CHECK(b && b->seq() == seq);
    if (b) RF_CHECK_MSG(rftest::verify_bars(*b, seq).empty(), "%s", rftest::verify_bars(*b, seq).c_str());
  }
}

void other_schemas_and_string_layouts() {
  std::vector<std::string> names = {"a", "", "a string longer than twelve bytes", "twelve bytes"};
  auto make = [&] {
    return make_struct({rftest::i64_col("id", {1, 2, 3, 4}), rftest::f64_col("px", {1.5, 2.5, 3.5, 4.5}),
                        rftest::utf8_col("name", names), rftest::utf8view_col("view", names),
                        rftest::i32_col("qty", {-1, 0, 1, 2})});
  };
  // By default the ring stores the Utf8 column as Utf8View (as Rust and
  // Python do) and converts Utf8 batches on write; strings_as_given keeps Utf8.
  for (bool as_given : {false, true}) {
    auto name = rftest::unique_name(as_given ? "schema-as-given" : "schema-view");
    auto first = make();
    auto opts = small();
    opts.strings_as_given = as_given;
    auto w = ringfeed::Writer::create(name, *first.second.get(), opts);
    ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
    RF_CHECK(w.write(first.first.get(), first.second.get()) == 1);
    RF_CHECK(w.write(make().first.get()) == 2);  // nullptr: the schema the ring was created with
    ringfeed::UniqueSchema stored;
    w.export_schema(stored.get());
    RF_CHECK_MSG(std::strcmp(stored->children[2]->format, as_given ? "u" : "vu") == 0, "%s",
                 stored->children[2]->format);
    for (std::uint64_t seq = 1; seq <= 2; ++seq) {
      auto b = r.read(2s);
      RF_CHECK(b.has_value() && b->seq() == seq);
      if (!b) return;
      auto id = b->column<std::int64_t>("id");
      RF_CHECK(id.size() == 4 && id[3] == 4);
      RF_CHECK(b->column<double>("px")[1] == 2.5);
      RF_CHECK(b->column<std::int32_t>("qty")[0] == -1);
      RF_CHECK_MSG(b->column_type(2) == (as_given ? "Utf8" : "Utf8View"), "%s", b->column_type(2).c_str());
      RF_CHECK(b->column_type(3) == "Utf8View");
      for (const char* col : {"name", "view"}) {
        auto s = b->strings(col);
        RF_CHECK(s.size() == 4);
        for (std::size_t i = 0; i < names.size(); ++i) {
          RF_CHECK_MSG(s[i] == names[i], "%s row %zu: \"%.*s\"", col, i, int(s[i].size()), s[i].data());
          RF_CHECK(s[i].empty() || b->in_arena(s[i].data()));
        }
      }
      RF_CHECK(b->is_zero_copy());
    }
  }
}

/// A Utf8 column built by hand through the C Data Interface with `offsets` over `data`.
rftest::Col raw_utf8(std::string name, std::vector<std::int32_t> offsets, std::string data) {
  rftest::Col c{std::move(name), "u", std::int64_t(offsets.size()) - 1, 0, {}, {}};
  c.storage = {{}, rftest::bytes_of(offsets), std::vector<std::uint8_t>(data.begin(), data.end())};
  c.null_buffer = {true, false, false};
  return c;
}

void broken_batches_are_refused_at_write() {
  // The policy Rust and Python share (ringfeed_arrow::foreign::import_array):
  // every value is validated before the writer reads it; nothing is published.
  for (bool as_given : {false, true}) {
    auto name = rftest::unique_name("broken");
    auto schema = make_struct({rftest::i64_col("id", {1, 2}), raw_utf8("name", {0, 1, 2}, "ab")});
    auto opts = small();
    opts.strings_as_given = as_given;
    auto w = ringfeed::Writer::create(name, *schema.second.get(), opts);
    {
      // Decreasing offsets (inside the data): row 1 would be bytes 3..2.
      auto arr = make_struct({rftest::i64_col("id", {1, 2, 3}), raw_utf8("name", {0, 3, 2, 5}, "abcde")});
      RF_EXPECT_THROW(ringfeed::Error, "column \"name\" is not valid Arrow data",
                      w.write(arr.first.get(), arr.second.get()));
      RF_CHECK(!arr.first);  // released although refused
    }
    {
      // A string view pointing past the end of its data buffer (whose size the
      // C Data Interface carries, so the import can check it; a Utf8 offset
      // past the end cannot be checked: the values buffer's size is implied
      // by the last offset).
      auto col = rftest::utf8view_col("name", {"a string longer than twelve bytes", "b"});
      const std::int32_t far = 1000;
      std::memcpy(col.storage[1].data() + 12, &far, 4);  // row 0's offset into data buffer 0
      auto arr = make_struct({rftest::i64_col("id", {1, 2}), col});
      RF_EXPECT_THROW(ringfeed::Error, "column \"name\" is not valid Arrow data",
                      w.write(arr.first.get(), arr.second.get()));
    }
    {
      // Invalid UTF-8.
      auto arr = make_struct({rftest::i64_col("id", {1, 2}), raw_utf8("name", {0, 1, 2}, "a\xff")});
      try {
        w.write(arr.first.get(), arr.second.get());
        RF_CHECK_MSG(false, "invalid UTF-8 was accepted");
      } catch (const ringfeed::Error& e) {
        RF_CHECK(e.kind() == ringfeed::ErrorKind::InvalidArgument);
        RF_CHECK_MSG(std::strstr(e.what(), "\"name\"") != nullptr, "%s", e.what());
        std::printf("  ok: threw \"%s\"\n", e.what());
      }
    }
    RF_CHECK(w.next_seq() == 1);  // nothing was published
    auto good = make_struct({rftest::i64_col("id", {1, 2}), raw_utf8("name", {0, 1, 2}, "ab")});
    RF_CHECK(w.write(good.first.get(), good.second.get()) == 1);
  }
}

void typed_views_read_the_export() {
  // Column views are header code over the batch's C Data Interface export:
  // every fixed width, nulls, LargeUtf8 (kept with strings_as_given), and
  // views that stay valid when the Batch moves.
  auto name = rftest::unique_name("views");
  auto i8 = rftest::fixed_col<std::int8_t>("i8", "c", {-1, 2, 3});
  auto u16 = rftest::fixed_col<std::uint16_t>("u16", "S", {1, 65535, 3});
  auto f32 = rftest::fixed_col<float>("f32", "f", {0.5f, 1.5f, 2.5f});
  auto day = rftest::fixed_col<std::int32_t>("day", "tdD", {18628, 18629, 18630});
  auto px = rftest::f64_col("px", {1.0, -7.0, 3.0});
  px.flags = ARROW_FLAG_NULLABLE;
  px.storage[0] = {0b101};  // row 1 is null
  px.null_buffer[0] = false;
  px.null_count = 1;
  rftest::Col big{"big", "U", 3, 0, {}, {}};
  big.storage = {{}, rftest::bytes_of(std::vector<std::int64_t>{0, 1, 1, 4}),
                 std::vector<std::uint8_t>{'a', 'x', 'y', 'z'}};
  big.null_buffer = {true, false, false};
  auto arr = make_struct({i8, u16, f32, day, px, big});
  auto opts = small();
  opts.strings_as_given = true;
  auto w = ringfeed::Writer::create(name, *arr.second.get(), opts);
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
  w.write(arr.first.get(), arr.second.get());
  auto b = r.read(2s);
  RF_CHECK(b.has_value());
  if (!b) return;
  RF_CHECK(b->column<std::int8_t>("i8")[0] == -1);
  RF_CHECK(b->column<std::uint16_t>("u16")[1] == 65535);
  RF_CHECK(b->column<float>("f32")[2] == 2.5f);
  RF_CHECK(b->column<std::int32_t>("day").back() == 18630);
  RF_EXPECT_THROW(ringfeed::SchemaMismatch, "cannot be read as int64_t", b->column<std::int64_t>("day"));
  RF_CHECK(b->column_name(5) == "big" && b->column_index("f32") == 2);
  auto px_col = b->column<double>("px");
  auto big_col = b->strings("big");
  RF_CHECK(b->column_type(5) == "LargeUtf8");
  ringfeed::Batch moved = std::move(*b);  // the views point into the arena, not into the handle
  b.reset();
  RF_CHECK(px_col.size() == 3 && px_col.null_count() == 1);
  RF_CHECK(px_col.is_valid(0) && !px_col.is_valid(1) && px_col.is_valid(2));
  RF_CHECK(px_col[0] == 1.0 && px_col[2] == 3.0);
  RF_CHECK(big_col[0] == "a" && big_col[1].empty() && big_col[2] == "xyz");
  RF_CHECK(moved.in_arena(big_col[2].data()) && moved.in_arena(px_col.data()));
  RF_CHECK(moved.column<double>("px").null_count() == 1);
  ringfeed::Batch last = std::move(moved);
  RF_CHECK(last.column<std::int8_t>(0)[2] == 3);
  RF_EXPECT_THROW(ringfeed::Error, "moved-from ringfeed::Batch", moved.column<double>("px"));
}

void c_data_interface_export() {
  auto name = rftest::unique_name("export");
  auto w = ringfeed::Writer::create_bars(name, small());
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
  rftest::write_bars(w, rftest::bars(1, 64));
  auto b = r.read(2s);
  RF_CHECK(b.has_value());
  if (!b) return;
  auto [array, schema] = b->export_arrow();
  RF_CHECK(std::strcmp(schema->format, "+s") == 0);
  RF_CHECK(schema->n_children == 7 && array->n_children == 7);
  RF_CHECK(array->length == 64 && array->null_count == 0);
  const char* formats[] = {"tsn:UTC", "vu", "g", "g", "g", "g", "g"};
  const char* names[] = {"ts", "symbol", "open", "high", "low", "close", "volume"};
  for (int i = 0; i < 7; ++i) {
    RF_CHECK_MSG(std::strcmp(schema->children[i]->format, formats[i]) == 0, "%s", schema->children[i]->format);
    RF_CHECK(std::strcmp(schema->children[i]->name, names[i]) == 0);
    RF_CHECK((schema->children[i]->flags & ARROW_FLAG_NULLABLE) == 0);
    RF_CHECK(array->children[i]->length == 64);
    // Value buffers (views for symbol) point into the shared-memory arena.
    RF_CHECK_MSG(b->in_arena(array->children[i]->buffers[1]), "column %d is not in the arena", i);
  }
  const double* close = static_cast<const double*>(array->children[5]->buffers[1]);
  RF_CHECK(close[63] == rftest::bar_open(1, 63) + 0.25);
  RF_CHECK(close == b->column<double>("close").data());

  ringfeed::UniqueStream stream;
  b->export_stream(stream.get());
  ringfeed::UniqueSchema s2;
  RF_CHECK(stream->get_schema(stream.get(), s2.get()) == 0);
  RF_CHECK(s2->n_children == 7);
  ringfeed::UniqueArray a1, a2;
  RF_CHECK(stream->get_next(stream.get(), a1.get()) == 0);
  RF_CHECK(a1 && a1->length == 64);
  RF_CHECK(stream->get_next(stream.get(), a2.get()) == 0);
  RF_CHECK(!a2);  // end of stream

  // An independent Arrow implementation accepts the export: arrow-rs's C Data
  // import (with full validation) takes it as the input of a second ring,
  // whose reader gets the same values back.
  auto name2 = rftest::unique_name("reimport");
  auto w2 = ringfeed::Writer::create_bars(name2, small());
  ringfeed::Reader r2(name2, ringfeed::StartAt::Oldest);
  auto again = b->export_arrow();
  w2.write(again.first.get(), again.second.get());
  auto back = r2.read(2s);
  RF_CHECK(back && back->num_rows() == 64);
  if (back) {
    RF_CHECK(back->column<double>("close").data()[63] == close[63]);
    RF_CHECK(back->strings("symbol")[5] == b->strings("symbol")[5]);
  }
}

void reader_and_writer_schemas() {
  auto name = rftest::unique_name("schemas");
  auto w = ringfeed::Writer::create_bars(name, small());
  ringfeed::Reader r(name);
  ringfeed::UniqueSchema ws, rs;
  w.export_schema(ws.get());
  r.export_schema(rs.get());
  RF_CHECK(ws->n_children == 7 && rs->n_children == 7);
  RF_CHECK(std::strcmp(rs->children[1]->format, "vu") == 0);
}

void errors() {
  auto name = rftest::unique_name("errors");
  RF_EXPECT_THROW(ringfeed::NotFound, "no arena named", ringfeed::Reader r(name));
  RF_EXPECT_THROW(ringfeed::NotFound, "no arena named", ringfeed::inspect(name));
  RF_EXPECT_THROW(ringfeed::Error, "invalid arena name", ringfeed::Writer::create_bars("../etc/passwd"));
  try {
    ringfeed::Writer::create_bars("bad/name");
  } catch (const ringfeed::Error& e) {
    RF_CHECK(e.kind() == ringfeed::ErrorKind::InvalidArgument);
  }

  auto w = ringfeed::Writer::create_bars(name, small());
  RF_EXPECT_THROW(ringfeed::AlreadyExists, "already exists", ringfeed::Writer::create_bars(name, small()));
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);

  // Schema mismatch: one column instead of seven, then the right names with a wrong type.
  {
    auto arr = make_struct({rftest::f64_col("close", {1.0})});
    RF_EXPECT_THROW(ringfeed::SchemaMismatch, "7 columns expected", w.write(arr.first.get(), arr.second.get()));
    RF_CHECK(!arr.first);  // released even though the write failed
  }
  {
    auto b = rftest::bars(1, 2);
    auto arr = make_struct({rftest::ts_utc_col("ts", b.ts), rftest::utf8view_col("symbol", b.symbol),
                            rftest::f64_col("open", b.open), rftest::f64_col("high", b.high),
                            rftest::f64_col("low", b.low), rftest::i64_col("close", {1, 2}),
                            rftest::f64_col("volume", b.volume)});
    RF_EXPECT_THROW(ringfeed::SchemaMismatch, "column \"close\"", w.write(arr.first.get(), arr.second.get()));
  }
  {
    auto arr = rftest::bars_arrow(1, 3);
    arr.first.reset();  // released: must be refused, not read
    RF_EXPECT_THROW(ringfeed::Error, "released", w.write(arr.first.get(), arr.second.get()));
  }
  {
    auto b = rftest::bars(1, 3);
    b.close.pop_back();
    RF_EXPECT_THROW(ringfeed::Error, "different lengths", rftest::write_bars(w, b));
  }
  // write_bars on a ring of another schema.
  {
    auto other = rftest::unique_name("other");
    auto arr = make_struct({rftest::f64_col("close", {1.0})});
    auto w2 = ringfeed::Writer::create(other, *arr.second.get(), small());
    RF_EXPECT_THROW(ringfeed::SchemaMismatch, "ohlcv_schema", rftest::write_bars(w2, rftest::bars(1, 1)));
    // A non-struct schema is not a record batch schema.
    RF_EXPECT_THROW(ringfeed::Error, "not a record batch schema",
                    ringfeed::Writer::create(rftest::unique_name("ns"), *arr.second->children[0], small()));
  }
  // Oversize: 4 KiB slots, a 10 000-row batch.
  {
    auto tiny = rftest::unique_name("tiny");
    ringfeed::RingOptions o = small();
    o.slot_bytes = 4096;
    auto wt = ringfeed::Writer::create_bars(tiny, o);
    RF_EXPECT_THROW(ringfeed::TooLarge, "a slot holds 4096", rftest::write_bars(wt, rftest::bars(1, 10000)));
    RF_CHECK(wt.next_seq() == 1);  // nothing was published
  }
  // Column access with the wrong type or name.
  rftest::write_bars(w, rftest::bars(1, 4));
  {
    auto b = r.read(2s);
    RF_CHECK(b.has_value());
    if (b) {
      RF_EXPECT_THROW(ringfeed::SchemaMismatch, "cannot be read as double", b->column<double>("symbol"));
      RF_EXPECT_THROW(ringfeed::SchemaMismatch, "cannot be read as int32_t", b->column<std::int32_t>("ts"));
      RF_EXPECT_THROW(ringfeed::SchemaMismatch, "not a string column", b->strings("close"));
      RF_EXPECT_THROW(ringfeed::Error, "no column named \"nope\"", b->column<double>("nope"));
      RF_EXPECT_THROW(ringfeed::Error, "out of range", b->column<double>(std::size_t(99)));
      RF_EXPECT_THROW(std::out_of_range, "row out of range", b->column<double>("close").at(4));
    }
  }
  // A panic inside Rust becomes an exception.
  try {
    ringfeed::detail::panic_for_test("boom");
    RF_CHECK(false);
  } catch (const ringfeed::Error& e) {
    RF_CHECK(e.kind() == ringfeed::ErrorKind::Panic);
    RF_CHECK(std::strstr(e.what(), "boom") != nullptr);
    std::printf("  ok: panic -> \"%s\"\n", e.what());
  }
  // Close: later writes throw Closed; the reader drains, then sees Closed.
  rftest::write_bars(w, rftest::bars(2, 4));
  w.close();
  RF_EXPECT_THROW(ringfeed::Closed, "closed", rftest::write_bars(w, rftest::bars(3, 4)));
  {
    auto b = r.read(2s);
    RF_CHECK(b && b->seq() == 2);
  }
  RF_EXPECT_THROW(ringfeed::Closed, "closed", r.read(2s));
  // Moved-from handles throw instead of crashing.
  ringfeed::Reader moved = std::move(r);
  RF_EXPECT_THROW(ringfeed::Error, "moved-from ringfeed::Reader", r.cursor());
}

void lagged_and_leases() {
  auto name = rftest::unique_name("lag");
  auto opts = small(4);
  opts.leases_per_reader = 2;
  auto w = ringfeed::Writer::create_bars(name, opts);
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
  for (std::uint64_t seq = 1; seq <= 10; ++seq) rftest::write_bars(w, rftest::bars(seq, 3));
  try {
    r.read(1s);
    RF_CHECK_MSG(false, "no Lagged");
  } catch (const ringfeed::Lagged& e) {
    RF_CHECK_MSG(e.missed() == 6, "missed %llu", static_cast<unsigned long long>(e.missed()));
    RF_CHECK(e.kind() == ringfeed::ErrorKind::Lagged);
    std::printf("  ok: threw \"%s\"\n", e.what());
  }
  auto b7 = r.read(1s);
  auto b8 = r.read(1s);
  RF_CHECK(b7 && b7->seq() == 7 && b8 && b8->seq() == 8);
  RF_CHECK(r.leases() == 2);
  // A third lease exceeds leases_per_reader = 2.
  RF_EXPECT_THROW(ringfeed::TooManyLeases, "holds 2 batches", r.read(1s));
  auto copy = b7->clone();  // same lease, no new pin
  b7.reset();
  RF_CHECK(r.leases() == 2);
  copy = b8->clone();  // drops the last handle of batch 7
  RF_CHECK(r.leases() == 1);
  auto b9 = r.read(1s);
  RF_CHECK(b9 && b9->seq() == 9);
}

void blocking_ring_times_out() {
  auto name = rftest::unique_name("block");
  ringfeed::RingOptions o = small(2);
  o.block = 50ms;
  auto w = ringfeed::Writer::create_bars(name, o);
  ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
  rftest::write_bars(w, rftest::bars(1, 1));
  rftest::write_bars(w, rftest::bars(2, 1));
  RF_EXPECT_THROW(ringfeed::Timeout, "ring full", rftest::write_bars(w, rftest::bars(3, 1)));
  auto b = r.read(1s);
  RF_CHECK(b && b->seq() == 1);
  RF_CHECK(rftest::write_bars(w, rftest::bars(3, 1)) == 3);
}

}  // namespace

int main() {
  rftest::watchdog(std::getenv("RF_UNDER_VALGRIND") ? 240 : 60);
  rftest::run("bars_round_trip", bars_round_trip);
  rftest::run("full_validation_reads_valid_batches", full_validation_reads_valid_batches);
  rftest::run("write_bars_symbols", write_bars_symbols);
  rftest::run("generic_writer_round_trip", generic_writer_round_trip);
  rftest::run("other_schemas_and_string_layouts", other_schemas_and_string_layouts);
  rftest::run("broken_batches_are_refused_at_write", broken_batches_are_refused_at_write);
  rftest::run("typed_views_read_the_export", typed_views_read_the_export);
  rftest::run("c_data_interface_export", c_data_interface_export);
  rftest::run("reader_and_writer_schemas", reader_and_writer_schemas);
  rftest::run("errors", errors);
  rftest::run("lagged_and_leases", lagged_and_leases);
  rftest::run("blocking_ring_times_out", blocking_ring_times_out);
  return rftest::finish();
}
