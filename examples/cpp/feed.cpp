// Appends live 1-minute bars to a dataset of ringfeedd from plain C++
// vectors: one append per minute, three symbols. Each append returns once the
// rows are durable in the store; the daemon then publishes them to the live
// topics (1m, and every rollup they touch). Run `subscriber DATASET 1m` to watch.
//
//   feed [--socket PATH] DATASET MINUTES [INTERVAL_MS]
//
// The minutes continue after the newest bar the dataset holds (or start at
// 2021-01-01). INTERVAL_MS (default 200) is the pause between appends.
#include <ringfeed/ringfeed.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  std::string socket;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
      socket = argv[++i];
    else
      args.emplace_back(argv[i]);
  }
  if (args.size() < 2 || args.size() > 3) {
    std::fprintf(stderr, "usage: %s [--socket PATH] DATASET MINUTES [INTERVAL_MS]\n", argv[0]);
    return 2;
  }
  const std::string dataset = args[0];
  const int minutes = std::atoi(args[1].c_str());
  const int interval_ms = args.size() > 2 ? std::atoi(args[2].c_str()) : 200;
  constexpr std::int64_t kMinute = 60'000'000'000;
  const std::vector<std::string> symbols = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
  try {
    ringfeed::Client client(socket);

    // Continue after the newest stored bar: the last bar of every symbol.
    std::int64_t last = 1'609'459'200'000'000'000 - kMinute;  // 2021-01-01T00:00Z is the first
    ringfeed::Query q;
    q.dataset = dataset;
    q.limit = 1;
    q.from_end = true;
    for (const auto& batch : client.bars(q))
      for (std::int64_t ts : batch.column<std::int64_t>("ts")) last = ts > last ? ts : last;

    for (int k = 1; k <= minutes; ++k) {
      const std::int64_t ts = last + k * kMinute;
      const std::vector<double> px = {42000.0 + k, 3000.0 + k / 10.0, 150.0 + k / 100.0};
      std::vector<double> high, low, close;
      for (double p : px) {
        high.push_back(p + 1);
        low.push_back(p - 1);
        close.push_back(p + 0.5);
      }
      const std::uint64_t rows = client.append_bars(dataset, std::vector<std::int64_t>(3, ts), symbols, px, high,
                                                    low, close, std::vector<double>(3, 1.0));
      const std::time_t secs = ts / 1'000'000'000;
      std::tm utc{};
      gmtime_r(&secs, &utc);
      char when[32];
      std::strftime(when, sizeof when, "%Y-%m-%dT%H:%MZ", &utc);
      std::printf("appended %llu bars at %s\n", static_cast<unsigned long long>(rows), when);
      std::fflush(stdout);
      if (k < minutes) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
  } catch (const ringfeed::DaemonError& e) {
    std::fprintf(stderr, "feed: %s (%s)\n", e.what(), e.kind().c_str());
    return 1;
  } catch (const ringfeed::Error& e) {
    std::fprintf(stderr, "feed: %s (%s)\n", e.what(), ringfeed::to_string(e.kind()));
    return 1;
  }
  return 0;
}
