// Prints the last close of every batch published into a ringfeed ring.
//
//   subscriber NAME
//
// Waits (up to 10 s) for ring NAME to appear, reads every batch from the
// oldest one still present, and exits when the writer closes the ring. The
// columns are read in place, in shared memory: nothing is copied.
#include <ringfeed/ringfeed.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s NAME\n", argv[0]);
    return 2;
  }
  const std::string name = argv[1];
  try {
    std::optional<ringfeed::Reader> reader;
    for (int tries = 0; !reader; ++tries) {
      try {
        reader.emplace(name, ringfeed::StartAt::Oldest);
      } catch (const ringfeed::NotFound&) {
        if (tries == 1000) throw;  // 10 s
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    for (;;) {
      try {
        auto batch = reader->read(std::chrono::seconds(1));
        if (!batch) continue;  // nothing new within a second
        auto close = batch->column<double>("close");
        auto symbol = batch->strings("symbol");
        std::printf("batch %llu: %zu rows, last close %.2f (%.*s)\n",
                    static_cast<unsigned long long>(batch->seq()), batch->num_rows(), close.back(),
                    static_cast<int>(symbol.at(symbol.size() - 1).size()), symbol.at(symbol.size() - 1).data());
        std::fflush(stdout);
      } catch (const ringfeed::Lagged& e) {
        std::fprintf(stderr, "fell behind, %llu batches lost\n", static_cast<unsigned long long>(e.missed()));
      }
    }
  } catch (const ringfeed::Closed&) {
    return 0;  // the writer closed the ring and we read everything
  } catch (const ringfeed::Error& e) {
    std::fprintf(stderr, "subscriber: %s (%s)\n", e.what(), ringfeed::to_string(e.kind()));
    return 1;
  }
}
