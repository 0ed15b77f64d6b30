// Publishes 1-minute bars into a ringfeed ring, from plain C++ vectors.
//
//   publisher NAME [BATCHES]
//
// Creates ring NAME with the bar schema, waits (up to 10 s) for a subscriber,
// publishes BATCHES batches (default 10) of one bar per symbol, then closes
// the ring. Run `subscriber NAME` in another terminal.
#include <ringfeed/ringfeed.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s NAME [BATCHES]\n", argv[0]);
    return 2;
  }
  const std::string name = argv[1];
  const int batches = argc > 2 ? std::atoi(argv[2]) : 10;
  const std::vector<std::string> symbols = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
  try {
    ringfeed::RingOptions opts;
    opts.block = std::chrono::seconds(5);  // lossless: wait for a slow subscriber
    auto writer = ringfeed::Writer::create_bars(name, opts);
    if (!writer.wait_for_readers(1, std::chrono::seconds(10)))
      std::fprintf(stderr, "no subscriber yet; publishing anyway\n");

    const std::int64_t minute = 60'000'000'000;  // ns
    const std::int64_t t0 = 1'700'000'000'000'000'000 / minute * minute;
    for (int i = 1; i <= batches; ++i) {
      std::vector<std::int64_t> ts;
      std::vector<double> open, high, low, close, volume;
      for (std::size_t s = 0; s < symbols.size(); ++s) {
        double o = 100.0 * double(s + 1) + i;
        ts.push_back(t0 + i * minute);
        open.push_back(o);
        high.push_back(o + 1.0);
        low.push_back(o - 1.0);
        close.push_back(o + 0.25);
        volume.push_back(10.0 * i);
      }
      std::uint64_t seq = writer.write_bars(ts, symbols, open, high, low, close, volume);
      std::printf("published batch %llu\n", static_cast<unsigned long long>(seq));
    }
    writer.close();  // subscribers read what is left, then see Closed
  } catch (const ringfeed::Error& e) {
    std::fprintf(stderr, "publisher: %s (%s)\n", e.what(), ringfeed::to_string(e.kind()));
    return 1;
  }
  return 0;
}
