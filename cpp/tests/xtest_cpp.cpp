// rf-xtest-cpp: the C++ twin of `rf-xtest` (crates/xtest), with the same
// subcommands, flags, output and exit codes, so the cross-language matrix can
// use a C++ writer or reader wherever it uses the Rust one.
//
//   rf-xtest-cpp publish   --name N --batches B --rows R [--slots 8] [--slot-bytes 1048576]
//                          [--block-ms T] [--wait-readers K] [--interval-us U] [--hold]
//                          [--via vectors|arrow]
//   rf-xtest-cpp subscribe --name N --expect B [--start oldest|latest|next] [--timeout-ms 30000]
//                          [--hold-first] [--allow-lag] [--rows R]
//   rf-xtest-cpp hold      --name N --count K [--timeout-ms 30000]
//   rf-xtest-cpp bars      --socket PATH --dataset D --symbol S --timeframe TF [--start T] [--end T]
//                          [--wait-go]
//
// publish prints `published B` and closes the ring; subscribe prints one JSON
// line {"batches":..,"first_seq":..,"last_seq":..,"missed":..,"zero_copy":..,"verified":..,"error":..}
// and exits 0 only if every value verified; hold prints `holding K` and sleeps
// until killed. Exit codes: 0 success, 1 failure, 2 bad command line.
// `--via arrow` publishes through the generic C Data Interface path
// (Writer::write(ArrowArray*)) instead of write_bars.
//
// bars (for the cross-language memory test) queries ringfeedd, reads every
// byte of every fixed-width column buffer in place (so its pages are mapped
// in this process), prints one JSON line
// {"lang":"cpp","pid":P,"rows":N,"arena":"NAME","zero_copy":true|false,"sum_close":X},
// then keeps the result mapped until stdin reaches EOF, and exits 0. With
// --wait-go it first prints {"ready":true,"pid":P} and waits for a line on stdin.
// T is ns since the epoch, "YYYY-MM-DD" or RFC 3339; S "*" means all symbols.
#include "common.hpp"

#include <algorithm>
#include <cerrno>
#include <map>

namespace {

struct Args {
  std::map<std::string, std::string> kv;
  std::map<std::string, bool> flags;

  bool has(const std::string& k) const { return kv.count(k) != 0; }
  std::string str(const std::string& k) const {
    auto it = kv.find(k);
    if (it == kv.end()) throw std::invalid_argument("missing required --" + k);
    return it->second;
  }
  std::uint64_t num(const std::string& k, std::optional<std::uint64_t> dflt = std::nullopt) const {
    auto it = kv.find(k);
    if (it == kv.end()) {
      if (dflt) return *dflt;
      throw std::invalid_argument("missing required --" + k);
    }
    std::size_t used = 0;
    unsigned long long v = std::stoull(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("--" + k + " needs a number");
    return v;
  }
  bool flag(const std::string& k) const { return flags.count(k) != 0; }
};

Args parse(int argc, char** argv, const std::vector<std::string>& valued, const std::vector<std::string>& bools) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument " + s);
    std::string k = s.substr(2), v;
    auto eq = k.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      v = k.substr(eq + 1);
      k = k.substr(0, eq);
    }
    if (std::find(bools.begin(), bools.end(), k) != bools.end()) {
      a.flags[k] = true;
    } else if (std::find(valued.begin(), valued.end(), k) != valued.end()) {
      if (!inline_value) {
        if (i + 1 >= argc) throw std::invalid_argument("--" + k + " needs a value");
        v = argv[++i];
      }
      a.kv[k] = v;
    } else {
      throw std::invalid_argument("unknown option --" + k);
    }
  }
  return a;
}

[[noreturn]] void sleep_until_killed() {
  for (;;) pause();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

ringfeed::StartAt start_at(const std::string& s) {
  if (s == "oldest") return ringfeed::StartAt::Oldest;
  if (s == "latest") return ringfeed::StartAt::Latest;
  if (s == "next") return ringfeed::StartAt::Next;
  throw std::invalid_argument("--start must be oldest, latest or next");
}

/// Opens `name`, retrying while it does not exist yet, until `timeout_ms` passes.
ringfeed::Reader open_retry(const std::string& name, ringfeed::StartAt start, std::uint64_t timeout_ms) {
  std::uint64_t deadline = rftest::monotonic_ns() + timeout_ms * 1000000ull;
  for (;;) {
    try {
      return ringfeed::Reader(name, start);
    } catch (const ringfeed::NotFound& e) {
      if (rftest::monotonic_ns() >= deadline)
        throw std::runtime_error("opening ring \"" + name + "\": " + e.what());
      usleep(5000);
    }
  }
}

int publish(const Args& a) {
  const std::string name = a.str("name");
  const std::uint64_t batches = a.num("batches");
  const std::size_t rows = a.num("rows");
  const std::string via = a.has("via") ? a.str("via") : "vectors";
  if (via != "vectors" && via != "arrow") throw std::invalid_argument("--via must be vectors or arrow");
  ringfeed::RingOptions opts;
  opts.slots = std::uint32_t(a.num("slots", 8));
  opts.slot_bytes = a.num("slot-bytes", 1 << 20);
  if (a.has("block-ms")) opts.block = std::chrono::milliseconds(a.num("block-ms"));
  auto w = [&] {
    try {
      return ringfeed::Writer::create_bars(name, opts);
    } catch (const std::exception& e) {
      throw std::runtime_error("creating ring \"" + name + "\": " + e.what());
    }
  }();
  if (a.has("wait-readers")) {
    std::size_t k = a.num("wait-readers");
    if (!w.wait_for_readers(k, std::chrono::seconds(30)))
      throw std::runtime_error("fewer than " + std::to_string(k) + " readers attached to \"" + name + "\" within 30 s");
  }
  for (std::uint64_t i = 0; i < batches; ++i) {
    std::uint64_t seq = w.next_seq();
    std::uint64_t got;
    try {
      if (via == "arrow") {
        auto arr = rftest::bars_arrow(seq, rows);
        got = w.write(arr.first.get(), arr.second.get());
      } else {
        got = rftest::write_bars(w, rftest::bars(seq, rows));
      }
    } catch (const std::exception& e) {
      throw std::runtime_error("writing batch " + std::to_string(seq) + ": " + e.what());
    }
    if (got != seq)
      throw std::runtime_error("batch built for seq " + std::to_string(seq) + " was published as seq " +
                               std::to_string(got));
    if (a.has("interval-us")) usleep(useconds_t(a.num("interval-us")));
  }
  std::printf("published %llu\n", static_cast<unsigned long long>(batches));
  std::fflush(stdout);
  if (a.flag("hold")) sleep_until_killed();
  w.close();
  return 0;
}

struct Tally {
  std::uint64_t batches = 0;
  std::optional<std::uint64_t> first_seq, last_seq;
  std::uint64_t missed = 0;
  bool zero_copy = true;

  std::string json(const std::optional<std::string>& error) const {
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : std::string("null"); };
    return "{\"batches\":" + std::to_string(batches) + ",\"first_seq\":" + opt(first_seq) +
           ",\"last_seq\":" + opt(last_seq) + ",\"missed\":" + std::to_string(missed) +
           ",\"zero_copy\":" + (zero_copy ? "true" : "false") + ",\"verified\":" + (error ? "false" : "true") +
           ",\"error\":" + (error ? json_string(*error) : "null") + "}";
  }
};

void check(const ringfeed::Batch& b, std::optional<std::size_t> rows) {
  std::string e = rftest::verify_bars(b, b.seq());
  if (!e.empty()) throw std::runtime_error(e);
  if (rows && b.num_rows() != *rows)
    throw std::runtime_error("batch " + std::to_string(b.seq()) + " has " + std::to_string(b.num_rows()) +
                             " rows, expected " + std::to_string(*rows));
  if (!b.is_zero_copy() || !rftest::columns_in_arena(b))
    throw std::runtime_error("batch " + std::to_string(b.seq()) + " is not zero-copy: a buffer lies outside the arena");
}

void subscribe_into(const Args& a, Tally& t) {
  const std::string name = a.str("name");
  const std::uint64_t expect = a.num("expect");
  const std::uint64_t timeout_ms = a.num("timeout-ms", 30000);
  const bool allow_lag = a.flag("allow-lag");
  std::optional<std::size_t> rows;
  if (a.has("rows")) rows = a.num("rows");
  auto reader = open_retry(name, start_at(a.has("start") ? a.str("start") : "oldest"), timeout_ms);
  {
    ringfeed::UniqueSchema ring, bars = ringfeed::bar_schema();
    reader.export_schema(ring.get());
    bool same = ring->n_children == bars->n_children;
    for (std::int64_t i = 0; same && i < ring->n_children; ++i)
      same = std::strcmp(ring->children[i]->format, bars->children[i]->format) == 0 &&
             std::strcmp(ring->children[i]->name, bars->children[i]->name) == 0;
    if (!same) throw std::runtime_error("ring schema is not bar_schema()");
  }
  std::uint64_t expected = reader.cursor();
  std::optional<ringfeed::Batch> first;
  while (t.batches < expect) {
    try {
      auto b = reader.read(std::chrono::milliseconds(timeout_ms));
      if (!b)
        throw std::runtime_error("no batch within " + std::to_string(timeout_ms) + " ms after " +
                                 std::to_string(t.batches) + " batches");
      if (b->seq() != expected)
        throw std::runtime_error("got batch " + std::to_string(b->seq()) + " but expected " +
                                 std::to_string(expected) + " (seqs must rise by 1" +
                                 (allow_lag ? ", plus what Lagged reported)" : ")"));
      expected = b->seq() + 1;
      ++t.batches;
      if (!t.first_seq) t.first_seq = b->seq();
      t.last_seq = b->seq();
      t.zero_copy = t.zero_copy && b->is_zero_copy() && rftest::columns_in_arena(*b);
      check(*b, rows);
      if (a.flag("hold-first") && !first) first = std::move(b);
    } catch (const ringfeed::Lagged& e) {
      if (!allow_lag) throw std::runtime_error("after " + std::to_string(t.batches) + " batches: " + e.what());
      t.missed += e.missed();
      expected += e.missed();
    } catch (const ringfeed::Closed&) {
      if (!allow_lag && t.batches != expect)
        throw std::runtime_error("ring closed after " + std::to_string(t.batches) + " of " + std::to_string(expect) +
                                 " batches");
      break;
    } catch (const ringfeed::Error& e) {
      throw std::runtime_error("after " + std::to_string(t.batches) + " batches: " + e.what());
    }
  }
  if (first) {
    std::string e = rftest::verify_bars(*first, first->seq());
    if (!e.empty()) throw std::runtime_error("held first batch changed while leased: " + e);
  }
}

int subscribe(const Args& a) {
  Tally t;
  std::optional<std::string> err;
  try {
    subscribe_into(a, t);
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    err = e.what();
  }
  std::printf("%s\n", t.json(err).c_str());
  std::fflush(stdout);
  if (err) {
    std::fprintf(stderr, "rf-xtest-cpp subscribe: %s\n", err->c_str());
    return 1;
  }
  return 0;
}

int hold(const Args& a) {
  const std::string name = a.str("name");
  const std::size_t count = a.num("count");
  const std::uint64_t timeout_ms = a.num("timeout-ms", 30000);
  auto reader = open_retry(name, ringfeed::StartAt::Oldest, timeout_ms);
  std::vector<ringfeed::Batch> held;
  while (held.size() < count) {
    try {
      auto b = reader.read(std::chrono::milliseconds(timeout_ms));
      if (!b)
        throw std::runtime_error("no batch within " + std::to_string(timeout_ms) + " ms after " +
                                 std::to_string(held.size()) + " batches");
      check(*b, std::nullopt);
      held.push_back(std::move(*b));
    } catch (const ringfeed::Lagged&) {
      continue;
    }
  }
  std::printf("holding %zu\n", held.size());
  std::fflush(stdout);
  sleep_until_killed();
}

/// Bytes per value of a fixed-width C Data Interface format; 0 for anything else.
std::size_t fixed_width(const char* f) {
  switch (f[0]) {
    case 'c': case 'C': return 1;
    case 's': case 'S': case 'e': return 2;
    case 'i': case 'I': case 'f': return 4;
    case 'l': case 'L': case 'g': return 8;
    case 't':
      switch (f[1]) {
        case 'd': return f[2] == 'D' ? 4 : 8;                  // date32, date64
        case 't': return f[2] == 's' || f[2] == 'm' ? 4 : 8;   // time32, time64
        case 's': case 'D': return 8;                          // timestamp, duration
        default: return 0;
      }
    default: return 0;
  }
}

/// Sums every byte of `n` bytes at `p` (reads them all: their pages get mapped).
std::uint64_t touch(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += b[i];
  return sum;
}

ringfeed::Time time_arg(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos) return ringfeed::Time(std::stoll(s));
  return ringfeed::Time(s);
}

volatile std::uint64_t g_sink;  // keeps the byte sums from being optimised away

int bars(const Args& a) {
  ringfeed::Client client(a.str("socket"));
  if (a.flag("wait-go")) {
    // Let the driver measure this process before the query, then wait for its line.
    std::printf("{\"ready\":true,\"pid\":%d}\n", int(getpid()));
    std::fflush(stdout);
    char c = 0;
    while (read(0, &c, 1) == 1 && c != '\n') {
    }
  }
  ringfeed::Query q;
  q.dataset = a.str("dataset");
  q.symbols = {a.str("symbol")};
  q.timeframe = a.str("timeframe");
  if (a.has("start")) q.start = time_arg(a.str("start"));
  if (a.has("end")) q.end = time_arg(a.str("end"));
  const ringfeed::Bars result = client.bars(q);

  std::uint64_t bytes_sum = 0;
  double sum_close = 0;
  for (const ringfeed::Batch& b : result) {
    // The C Data Interface export has every column's buffers (no copy: it shares the lease).
    auto [array, schema] = b.export_arrow();
    for (std::int64_t k = 0; k < schema->n_children; ++k) {
      const ArrowArray* col = array->children[k];
      const std::size_t w = fixed_width(schema->children[k]->format);
      if (w == 0 || col->length == 0) continue;
      const std::size_t first = std::size_t(col->offset), n = std::size_t(col->length);
      if (col->buffers[0] != nullptr) bytes_sum += touch(col->buffers[0], (first + n + 7) / 8);
      bytes_sum += touch(static_cast<const std::uint8_t*>(col->buffers[1]) + first * w, n * w);
    }
    if (b.num_rows() > 0)
      for (double c : b.column<double>("close")) sum_close += c;
  }
  g_sink = bytes_sum;

  std::printf("{\"lang\":\"cpp\",\"pid\":%d,\"rows\":%llu,\"arena\":%s,\"zero_copy\":%s,\"sum_close\":%.17g}\n",
              int(getpid()), static_cast<unsigned long long>(result.num_rows()), json_string(result.arena()).c_str(),
              result.is_zero_copy() ? "true" : "false", sum_close);
  std::fflush(stdout);
  // Keep the mapping (and the leases) until the driver closes our stdin.
  char buf[256];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("reading stdin: ") + std::strerror(errno));
  }
  return 0;
}

void usage() {
  std::fprintf(stderr,
               "usage: rf-xtest-cpp publish --name N --batches B --rows R [--slots 8] [--slot-bytes B]\n"
               "                            [--block-ms T] [--wait-readers K] [--interval-us U] [--hold]\n"
               "                            [--via vectors|arrow]\n"
               "       rf-xtest-cpp subscribe --name N --expect B [--start oldest|latest|next]\n"
               "                            [--timeout-ms 30000] [--hold-first] [--allow-lag] [--rows R]\n"
               "       rf-xtest-cpp hold --name N --count K [--timeout-ms 30000]\n"
               "       rf-xtest-cpp bars --socket PATH --dataset D --symbol S --timeframe TF [--start T] [--end T]\n"
               "                            [--wait-go]\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string cmd = argv[1];
  Args a;
  try {
    if (cmd == "publish")
      a = parse(argc, argv, {"name", "batches", "rows", "slots", "slot-bytes", "block-ms", "wait-readers", "interval-us", "via"},
                {"hold"});
    else if (cmd == "subscribe")
      a = parse(argc, argv, {"name", "expect", "start", "timeout-ms", "rows"}, {"hold-first", "allow-lag"});
    else if (cmd == "hold")
      a = parse(argc, argv, {"name", "count", "timeout-ms"}, {});
    else if (cmd == "bars")
      a = parse(argc, argv, {"socket", "dataset", "symbol", "timeframe", "start", "end"}, {"wait-go"});
    else if (cmd == "-h" || cmd == "--help") {
      usage();
      return 0;
    } else
      throw std::invalid_argument("unknown subcommand " + cmd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rf-xtest-cpp: %s\n", e.what());
    usage();
    return 2;
  }
  try {
    if (cmd == "publish") return publish(a);
    if (cmd == "subscribe") return subscribe(a);
    if (cmd == "bars") return bars(a);
    return hold(a);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "rf-xtest-cpp: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rf-xtest-cpp: %s\n", e.what());
    return 1;
  }
}
