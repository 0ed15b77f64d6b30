// Prints every batch of a live topic of ringfeedd as it arrives, read in
// place in shared memory: the last close, the latency since the daemon
// published it, and whether the columns lie inside the daemon's arena.
//
//   subscriber [--socket PATH] DATASET TIMEFRAME   a live topic, e.g. crypto 1m
//   subscriber --ring NAME                          any ring by name (e.g. `publisher NAME`)
//
// The socket defaults to $RINGFEED_SOCKET, else the daemon's default path.
// Waits up to 10 s for the daemon (or the ring) to appear, and exits 0 when
// the ring closes (the daemon stopped, or the publisher closed it).
#include <ringfeed/ringfeed.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

namespace {

/// Calls `open` until it stops throwing `E` (the other side is not up yet), for up to 10 s.
template <class E, class F>
auto retry(F&& open) {
  for (int tries = 0;; ++tries) {
    try {
      return open();
    } catch (const E&) {
      if (tries == 1000) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket, ring;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
      socket = argv[++i];
    else if (std::strcmp(argv[i], "--ring") == 0 && i + 1 < argc)
      ring = argv[++i];
    else
      args.emplace_back(argv[i]);
  }
  if (ring.empty() == (args.size() != 2) || (!ring.empty() && !args.empty())) {
    std::fprintf(stderr, "usage: %s [--socket PATH] DATASET TIMEFRAME\n       %s --ring NAME\n", argv[0], argv[0]);
    return 2;
  }
  try {
    std::optional<ringfeed::Reader> reader;
    if (ring.empty()) {
      auto client = retry<ringfeed::ConnectError>([&] { return ringfeed::Client(socket); });
      // Next: only batches published from now on (a Replay would start from a time).
      reader.emplace(client.subscribe(args[0], args[1], ringfeed::StartAt::Next));
      std::printf("subscribed to %s/%s (ring %s)\n", args[0].c_str(), args[1].c_str(), reader->name().c_str());
    } else {
      reader.emplace(retry<ringfeed::NotFound>([&] { return ringfeed::Reader(ring, ringfeed::StartAt::Oldest); }));
      std::printf("reading ring %s\n", ring.c_str());
    }
    std::fflush(stdout);
    for (;;) {
      try {
        auto batch = reader->read(std::chrono::seconds(1));
        if (!batch) continue;  // nothing new within a second
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        const double latency_us =
            double(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() - std::int64_t(batch->ts_ns())) /
            1e3;
        auto close = batch->column<double>("close");  // a view into the arena, not a copy
        auto symbol = batch->strings("symbol");
        const std::string_view last = symbol.at(symbol.size() - 1);
        const bool in_place = batch->is_zero_copy() && batch->in_arena(close.data());
        std::printf("batch %llu: %zu rows, last close %.2f (%.*s), latency %.0f us, zero-copy %s\n",
                    static_cast<unsigned long long>(batch->seq()), batch->num_rows(), close.back(),
                    static_cast<int>(last.size()), last.data(), latency_us, in_place ? "yes" : "NO");
        std::fflush(stdout);
      } catch (const ringfeed::Lagged& e) {
        std::fprintf(stderr, "fell behind, %llu batches lost\n", static_cast<unsigned long long>(e.missed()));
      }
    }
  } catch (const ringfeed::Closed&) {
    return 0;  // the ring was closed and we read everything
  } catch (const ringfeed::DaemonError& e) {
    std::fprintf(stderr, "subscriber: %s (%s)\n", e.what(), e.kind().c_str());
    return 1;
  } catch (const ringfeed::Error& e) {
    std::fprintf(stderr, "subscriber: %s (%s)\n", e.what(), ringfeed::to_string(e.kind()));
    return 1;
  }
}
