// Lifetime through the C Data Interface: an exported ArrowArray keeps its
// slot leased (and its bytes unchanged) after the Batch and the Reader are
// destroyed, while the writer laps the ring many times; calling its release
// callback drops the lease, as the arena's own reader table shows.
#include "common.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kSlots = 4;
constexpr std::size_t kRows = 64;

/// Checks an exported bar batch against the formula through the raw C structs only.
std::string verify_exported(const ArrowArray* a, std::uint64_t seq) {
  if (a->release == nullptr) return "array is released";
  if (a->length != std::int64_t(kRows) || a->n_children != 7) return "wrong shape";
  auto values = [&](int col) { return a->children[col]->buffers[1]; };
  auto ts = static_cast<const std::int64_t*>(values(0));
  auto views = static_cast<const std::uint8_t*>(values(1));
  for (std::size_t j = 0; j < kRows; ++j) {
    if (ts[j] != rftest::bar_ts(seq, j)) return "ts differs at row " + std::to_string(j);
    std::int32_t len;
    std::memcpy(&len, views + 16 * j, 4);
    std::string sym(reinterpret_cast<const char*>(views + 16 * j + 4), std::size_t(len));
    if (sym != "S" + std::to_string(j % 4)) return "symbol differs at row " + std::to_string(j);
    double o = rftest::bar_open(seq, j);
    const double want[5] = {o, o + 1.0, o - 1.0, o + 0.25, double(j)};
    for (int c = 0; c < 5; ++c)
      if (static_cast<const double*>(values(2 + c))[j] != want[c])
        return "column " + std::to_string(2 + c) + " differs at row " + std::to_string(j);
  }
  return "";
}

ringfeed::RingOptions opts() {
  ringfeed::RingOptions o;
  o.slots = kSlots;
  o.slot_bytes = 1 << 16;
  o.max_readers = 4;
  return o;  // OverwriteOldest: the writer never waits for anyone
}

void export_outlives_reader() {
  auto name = rftest::unique_name("life");
  auto w = ringfeed::Writer::create_bars(name, opts());
  ringfeed::UniqueArray array;
  ringfeed::UniqueSchema schema;
  const void* close_ptr = nullptr;
  std::pair<std::uintptr_t, std::uintptr_t> arena;
  {
    ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
    rftest::write_bars(w, rftest::bars(1, kRows));
    auto b = r.read(2s);
    RF_CHECK(b.has_value());
    if (!b) return;
    b->export_to(array.get(), schema.get());
    close_ptr = b->column<double>("close").data();
    arena = b->arena_range();
    RF_CHECK(r.leases() == 1);
  }  // the Batch, then the Reader, are destroyed here

  auto st = ringfeed::inspect(name);
  std::printf("  after Reader destroyed: readers=%u leases=%u leased_buffers=%u\n", st.readers, st.leases,
              st.leased_buffers);
  RF_CHECK(st.readers == 1);  // the row lives on until the last lease goes
  RF_CHECK(st.leases == 1);
  RF_CHECK(st.leased_buffers == 1);

  // Lap the ring 10 times with other data.
  for (std::uint64_t seq = 2; seq <= 1 + 10 * kSlots; ++seq) rftest::write_bars(w, rftest::bars(seq, kRows));
  RF_CHECK(ringfeed::inspect(name).write_seq == 1 + 10 * kSlots);

  RF_CHECK(array->children[5]->buffers[1] == close_ptr);
  auto a = reinterpret_cast<std::uintptr_t>(close_ptr);
  RF_CHECK(a >= arena.first && a < arena.second);
  std::string e = verify_exported(array.get(), 1);
  RF_CHECK_MSG(e.empty(), "exported batch changed while leased: %s", e.c_str());

  // A new reader sees the newest batches, not the leased slot.
  {
    ringfeed::Reader late(name, ringfeed::StartAt::Oldest);
    auto b = late.read(1s);
    RF_CHECK(b && b->seq() > 1 + 10 * kSlots - kSlots);
    if (b) RF_CHECK(rftest::verify_bars(*b, b->seq()).empty());
  }

  array.reset();  // the release callback drops the lease
  schema.reset();
  st = ringfeed::inspect(name);
  std::printf("  after release: readers=%u leases=%u leased_buffers=%u\n", st.readers, st.leases, st.leased_buffers);
  RF_CHECK(st.leases == 0);
  RF_CHECK(st.leased_buffers == 0);
  RF_CHECK(st.readers == 0);
}

void stream_export_holds_the_lease() {
  auto name = rftest::unique_name("stream");
  auto w = ringfeed::Writer::create_bars(name, opts());
  ringfeed::UniqueStream stream;
  {
    ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
    rftest::write_bars(w, rftest::bars(1, kRows));
    auto b = r.read(2s);
    RF_CHECK(b.has_value());
    if (!b) return;
    b->export_stream(stream.get());
  }
  RF_CHECK(ringfeed::inspect(name).leases == 1);
  ringfeed::UniqueArray array;
  RF_CHECK(stream->get_next(stream.get(), array.get()) == 0);
  stream.reset();  // the array lives on without the stream
  RF_CHECK(ringfeed::inspect(name).leases == 1);
  for (std::uint64_t seq = 2; seq <= 1 + 10 * kSlots; ++seq) rftest::write_bars(w, rftest::bars(seq, kRows));
  std::string e = verify_exported(array.get(), 1);
  RF_CHECK_MSG(e.empty(), "%s", e.c_str());
  array.reset();
  RF_CHECK(ringfeed::inspect(name).leases == 0);
}

void export_outlives_writer_and_name() {
  auto name = rftest::unique_name("gone");
  auto w = ringfeed::Writer::create_bars(name, opts());
  ringfeed::UniqueArray array;
  ringfeed::UniqueSchema schema;
  {
    ringfeed::Reader r(name, ringfeed::StartAt::Oldest);
    rftest::write_bars(w, rftest::bars(7, kRows));
    r.read(2s)->export_to(array.get(), schema.get());
  }
  w.close();  // closes the ring and removes its name
  RF_EXPECT_THROW(ringfeed::NotFound, "no arena named", ringfeed::inspect(name));
  std::string e = verify_exported(array.get(), 7);  // the mapping is still ours
  RF_CHECK_MSG(e.empty(), "%s", e.c_str());
}

}  // namespace

int main() {
  rftest::watchdog(std::getenv("RF_UNDER_VALGRIND") ? 240 : 60);
  rftest::run("export_outlives_reader", export_outlives_reader);
  rftest::run("stream_export_holds_the_lease", stream_export_holds_the_lease);
  rftest::run("export_outlives_writer_and_name", export_outlives_writer_and_name);
  return rftest::finish();
}
