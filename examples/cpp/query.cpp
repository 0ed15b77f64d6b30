// Queries bars from ringfeedd and reads them in place: the daemon writes the
// result into shared memory once, and every client maps it (an identical
// query is answered from the daemon's cache, the same memory).
//
//   query [--socket PATH] DATASET SYMBOL TIMEFRAME [START [END]]
//
// SYMBOL "*" means all. TIMEFRAME is stored ("1m", "1h") or resampled on read
// ("7m"). START (included) and END (excluded): "YYYY-MM-DD", RFC 3339, or ns.
#include <ringfeed/ringfeed.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

ringfeed::Time parse_time(const std::string& s) {
  const bool digits = !s.empty() && s.find_first_not_of("-0123456789") == std::string::npos;
  if (digits) return ringfeed::Time(std::stoll(s));
  return ringfeed::Time(s);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
      socket = argv[++i];
    else
      args.emplace_back(argv[i]);
  }
  if (args.size() < 3 || args.size() > 5) {
    std::fprintf(stderr, "usage: %s [--socket PATH] DATASET SYMBOL TIMEFRAME [START [END]]\n", argv[0]);
    return 2;
  }
  try {
    ringfeed::Client client(socket);
    ringfeed::Query q;
    q.dataset = args[0];
    if (args[1] != "*") q.symbols = {args[1]};
    q.timeframe = args[2];
    if (args.size() > 3) q.start = parse_time(args[3]);
    if (args.size() > 4) q.end = parse_time(args[4]);

    const ringfeed::Bars bars = client.bars(q);
    std::printf("%llu rows in %zu batch(es) from arena %s (cached: %s)\n",
                static_cast<unsigned long long>(bars.num_rows()), bars.num_batches(), bars.arena().c_str(),
                bars.cached() ? "yes" : "no");
    if (bars.num_rows() == 0) return 0;
    // First and last non-empty batch: their close columns are views into the arena.
    const ringfeed::Batch* first = nullptr;
    const ringfeed::Batch* last = nullptr;
    for (const auto& b : bars)
      if (b.num_rows() > 0) {
        if (first == nullptr) first = &b;
        last = &b;
      }
    const auto head = first->column<double>("close");
    const auto tail = last->column<double>("close");
    std::printf("first close %.2f, last close %.2f\n", head.front(), tail.back());
    std::printf("close buffer at %p, inside the daemon's shared-memory arena: %s\n",
                static_cast<const void*>(head.data()), first->in_arena(head.data()) ? "yes" : "NO");
    std::printf("zero-copy: %s\n", bars.is_zero_copy() ? "yes" : "NO");
  } catch (const ringfeed::DaemonError& e) {
    std::fprintf(stderr, "query: %s (%s)\n", e.what(), e.kind().c_str());
    return 1;
  } catch (const ringfeed::Error& e) {
    std::fprintf(stderr, "query: %s (%s)\n", e.what(), ringfeed::to_string(e.kind()));
    return 1;
  }
  return 0;
}
