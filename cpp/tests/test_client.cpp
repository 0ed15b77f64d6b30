// The daemon client end to end: the real `ringfeedd` (path in $RINGFEEDD) in
// a temporary directory, with its own arena directory, driven from C++.
// Mirrors crates/daemon/tests/e2e.rs: append from C++, query back in place,
// the cache, live subscribers, replay without gap or duplicate, typed
// errors, and a clean SIGTERM shutdown.
#include <cmath>
#include "common.hpp"

#include <atomic>
#include <filesystem>
#include <thread>

namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kMin = 60'000'000'000;
constexpr std::int64_t kT0 = 1'609'459'200'000'000'000;  // 2021-01-01T00:00:00Z

/// `n` one-minute bars per symbol from minute `from`: open = minute, close = minute + 0.5,
/// low = open - 1 but never negative (the daemon refuses a negative low).
rftest::Bars minutes(const std::vector<std::string>& symbols, std::int64_t from, std::int64_t n) {
  rftest::Bars b;
  for (std::int64_t m = from; m < from + n; ++m) {
    for (const auto& s : symbols) {
      const double o = double(m);
      b.ts.push_back(kT0 + m * kMin);
      b.symbol.push_back(s);
      b.open.push_back(o);
      b.high.push_back(o + 1.0);
      b.low.push_back(o >= 1.0 ? o - 1.0 : 0.0);
      b.close.push_back(o + 0.5);
      b.volume.push_back(o);
    }
  }
  return b;
}

/// `b` as a C Data Interface struct array (what a feed handler without libarrow builds).
std::pair<ringfeed::UniqueArray, ringfeed::UniqueSchema> to_arrow(const rftest::Bars& b) {
  return rftest::make_struct({rftest::ts_utc_col("ts", b.ts), rftest::utf8view_col("symbol", b.symbol),
                              rftest::f64_col("open", b.open), rftest::f64_col("high", b.high),
                              rftest::f64_col("low", b.low), rftest::f64_col("close", b.close),
                              rftest::f64_col("volume", b.volume)});
}

std::uint64_t append_bars(ringfeed::Client& c, const rftest::Bars& b) {
  return c.append_bars("test", b.ts, b.symbol, b.open, b.high, b.low, b.close, b.volume);
}

/// Every close of `bars` (optionally of one symbol), in order.
std::vector<double> closes(const ringfeed::Bars& bars) {
  std::vector<double> out;
  for (const auto& b : bars) {
    auto c = b.column<double>("close");
    out.insert(out.end(), c.begin(), c.end());
  }
  return out;
}

/// Minutes (close - 0.5) of the rows of `b` for `symbol`.
std::vector<std::int64_t> minutes_of(const ringfeed::Batch& b, const std::string& symbol) {
  std::vector<std::int64_t> out;
  auto sym = b.strings("symbol");
  auto close = b.column<double>("close");
  for (std::size_t i = 0; i < b.num_rows(); ++i)
    if (sym[i] == symbol) out.push_back(std::int64_t(close[i] - 0.5));
  return out;
}

std::vector<double> range_closes(std::int64_t from, std::int64_t to) {
  std::vector<double> v;
  for (std::int64_t m = from; m < to; ++m) v.push_back(double(m) + 0.5);
  return v;
}

/// A `ringfeedd` child process in its own temporary directory.
class Daemon {
 public:
  Daemon(const fs::path& dir, const std::string& prefix) : dir_(dir), socket_((dir / "rf.sock").string()) {
    const char* bin = std::getenv("RINGFEEDD");
    if (bin == nullptr || *bin == '\0') throw std::runtime_error("set RINGFEEDD to the ringfeedd binary");
    const fs::path cfg = dir / "ringfeed.toml";
    {
      std::FILE* f = std::fopen(cfg.c_str(), "w");
      if (f == nullptr) throw std::runtime_error("cannot write " + cfg.string());
      std::fprintf(f,
                   "data_dir = \"%s\"\nsocket = \"%s\"\narena_prefix = \"%s\"\nmemory_budget = \"64MiB\"\n"
                   "[datasets.test]\nbase = \"1m\"\nrollups = [\"5m\", \"1h\"]\n",
                   (dir / "data").c_str(), socket_.c_str(), prefix.c_str());
      std::fclose(f);
    }
    std::vector<std::string> argv = {bin, "--config", cfg.string()};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    // stdin, stdout and stderr are inherited: its warnings show in the test log.
    int rc = posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), environ);
    if (rc != 0) throw std::runtime_error(std::string("cannot spawn ") + bin + ": " + std::strerror(rc));
    // Ready when a client gets in.
    const std::uint64_t deadline = rftest::monotonic_ns() + 30'000'000'000ull;
    for (;;) {
      try {
        ringfeed::Client(socket_).ping();
        return;
      } catch (const ringfeed::ConnectError&) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          throw std::runtime_error("ringfeedd exited during start-up");
        }
        if (rftest::monotonic_ns() > deadline) throw std::runtime_error("ringfeedd did not come up within 30 s");
        usleep(20000);
      }
    }
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  const std::string& socket() const { return socket_; }

  /// SIGTERM, then its exit code (128 + signal if killed by one).
  int terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);  // the process watchdog catches a hang
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  fs::path dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

}  // namespace

int main() {
  const bool valgrind = std::getenv("RF_UNDER_VALGRIND") != nullptr;
  rftest::watchdog(valgrind ? 280 : 110);

  // One directory for the daemon's data, socket and arenas; both processes
  // find the arenas through RINGFEED_SHM_DIR.
  char tmpl[] = "/tmp/rf-cpp-client-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir = tmpl;
  const fs::path shm = dir / "shm";
  fs::create_directory(shm);
  setenv("RINGFEED_SHM_DIR", shm.c_str(), 1);
  setenv("RUST_LOG", "warn", 0);  // the daemon child: warnings only
  const std::string prefix = "cpptest" + std::to_string(getpid());
  auto arenas = [&] {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(shm))
      if (e.path().filename().string().find(prefix) != std::string::npos) v.push_back(e.path().filename().string());
    return v;
  };

  rftest::run("no daemon: ConnectError names the socket", [&] {
    const std::string missing = (dir / "nobody.sock").string();
    RF_EXPECT_THROW(ringfeed::ConnectError, "cannot connect to ringfeedd", ringfeed::Client c(missing));
    try {
      ringfeed::Client c(missing);
    } catch (const ringfeed::Error& e) {
      RF_CHECK(e.kind() == ringfeed::ErrorKind::Connect);
      RF_CHECK_MSG(std::strstr(e.what(), "nobody.sock") != nullptr, "%s", e.what());
    }
  });

  std::optional<Daemon> daemon;
  try {
    daemon.emplace(dir, prefix);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starting ringfeedd: %s\n", e.what());
    fs::remove_all(dir);
    return 1;
  }
  ringfeed::Client c(daemon->socket());
  std::optional<ringfeed::Bars> kept;  // read again after the daemon stopped
  std::optional<ringfeed::Reader> sub1;

  rftest::run("ping, stat, datasets", [&] {
    c.ping();
    RF_CHECK(c.stat().find("ringfeed_") != std::string::npos);
    const std::string ds = c.datasets();
    RF_CHECK_MSG(ds.find("\"test\"") != std::string::npos, "%s", ds.c_str());
    const std::string ready = c.ready("test");
    RF_CHECK_MSG(ready.find("\"ready\":true") != std::string::npos, "%s", ready.c_str());
    RF_CHECK_MSG(ready.find("\"timeframe\":\"1m\"") != std::string::npos, "%s", ready.c_str());
    bool unknown = false;
    try {
      c.ready("nope");
    } catch (const ringfeed::DaemonError& e) {
      unknown = e.kind() == "unknown_dataset";
    }
    RF_CHECK(unknown);
    const std::string made = c.create_dataset("cppfresh", "1m", "5m");
    RF_CHECK_MSG(made.find("created dataset cppfresh (1m, 5m)") != std::string::npos, "%s", made.c_str());
    RF_CHECK(c.create_dataset("cppfresh", "1m", "5m").find("exists") != std::string::npos);
    RF_EXPECT_THROW(ringfeed::DaemonError, "different configuration", c.create_dataset("cppfresh", "1m", "1h"));
  });

  rftest::run("append from C++, live 1m and 5m subscribers see it in place", [&] {
    sub1.emplace(c.subscribe("test", "1m"));  // StartAt::Next: only what comes next
    auto sub5 = c.subscribe("test", "5m", ringfeed::StartAt::Next);
    RF_CHECK_MSG(sub1->name() == prefix + ".t.test.1m", "%s", sub1->name().c_str());

    // bar_schema() (the 7 OHLCV columns) holds the daemon's required columns; it adds the optional ones.
    auto arr = to_arrow(minutes({"AAA", "BBB"}, 0, 60));
    RF_CHECK(c.append("test", arr.first.get(), ringfeed::bar_schema().get()) == 120);
    RF_CHECK(!arr.first);  // moved in and released

    auto b1 = sub1->read(std::chrono::seconds(10));
    RF_CHECK(b1.has_value());
    if (b1) {
      RF_CHECK(b1->num_rows() == 120);
      RF_CHECK(b1->is_zero_copy() && rftest::columns_in_arena(*b1));
      auto close = b1->column<double>("close");
      RF_CHECK(close.front() == 0.5 && close.back() == 59.5);
      RF_CHECK(b1->in_arena(close.data()));
    }
    auto b5 = sub5.read(std::chrono::seconds(10));
    RF_CHECK(b5.has_value());
    if (b5) {
      RF_CHECK_MSG(b5->num_rows() == 24, "twelve 5m bars per symbol, got %zu rows", b5->num_rows());
      RF_CHECK(b5->column_index("complete") < b5->num_columns());
      RF_CHECK(b5->is_zero_copy());
    }

    // The vector path: five more minutes of AAA.
    RF_CHECK(append_bars(c, minutes({"AAA"}, 60, 5)) == 5);
    auto b2 = sub1->read(std::chrono::seconds(10));
    RF_CHECK(b2 && b2->num_rows() == 5 && b2->column<double>("close").back() == 64.5);
  });

  rftest::run("bars: zero-copy in the daemon's arena; the same query again is cached", [&] {
    ringfeed::Query q;
    q.dataset = "test";
    q.symbols = {"AAA"};
    q.timeframe = "1m";
    q.start = "2021-01-01 00:10";
    q.end = kT0 + 20 * kMin;
    auto b = c.bars(q);
    RF_CHECK(b.num_rows() == 10);
    RF_CHECK(closes(b) == range_closes(10, 20));
    RF_CHECK(!b.cached());
    RF_CHECK(b.num_batches() >= 1 && b.is_zero_copy());
    for (const auto& batch : b) {
      RF_CHECK(rftest::columns_in_arena(batch));
      auto [lo, hi] = batch.arena_range();
      RF_CHECK(lo < hi);
    }
    auto again = c.bars(q);
    RF_CHECK(again.cached());
    RF_CHECK(again.arena() == b.arena());
    RF_CHECK(closes(again) == range_closes(10, 20));
    // The short form, with the same range as text and ns: the same cached arena.
    RF_CHECK(c.bars("test", "AAA", "1m", "2021-01-01 00:10", kT0 + 20 * kMin).arena() == b.arena());
    // A second client maps the same arena too.
    ringfeed::Client c2(daemon->socket());
    RF_CHECK(c2.bars(q).arena() == b.arena());
    kept.emplace(std::move(b));
  });

  rftest::run("rf-xtest-cpp bars: one JSON line, keeps the result mapped until stdin closes", [&] {
    const char* xtest = std::getenv("RF_XTEST_CPP");
    if (xtest == nullptr) {
      RF_CHECK_MSG(false, "RF_XTEST_CPP is not set");
      return;
    }
    auto child = rftest::spawn({xtest, "bars", "--socket", daemon->socket(), "--dataset", "test", "--symbol", "AAA",
                                "--timeframe", "1m", "--start", "2021-01-01 00:10", "--end",
                                std::to_string(kT0 + 20 * kMin)},
                               /*pipe_stdin=*/true);
    const bool got = child.wait_for_line("\n", 30000);
    RF_CHECK_MSG(got, "no line from rf-xtest-cpp bars");
    const std::string& line = child.buffered;
    const std::string want = "{\"lang\":\"cpp\",\"pid\":" + std::to_string(child.pid) +
                             ",\"rows\":10,\"arena\":\"" + kept->arena() +
                             "\",\"zero_copy\":true,\"sum_close\":150}\n";
    RF_CHECK_MSG(line == want, "got %s want %s", line.c_str(), want.c_str());
    // It waits for EOF on stdin, holding the result; then exits 0.
    RF_CHECK(waitpid(child.pid, nullptr, WNOHANG) == 0);
    child.close_stdin();
    RF_CHECK(child.finish(30000) == 0);
  });

  rftest::run("bars: resampling, fields and limit, all chunks as one ArrowArrayStream", [&] {
    auto b15 = c.bars("test", "BBB", "15m");
    RF_CHECK((closes(b15) == std::vector<double>{14.5, 29.5, 44.5, 59.5}));
    auto h = c.bars("test", "", "1h");
    RF_CHECK(h.num_rows() == 3);  // AAA 00:00 and 01:00, BBB 00:00

    ringfeed::Query q;
    q.dataset = "test";
    q.fields = {"close"};
    q.limit = 3;
    q.from_end = true;
    auto last = c.bars(q);
    RF_CHECK(last.num_rows() == 6);
    for (const auto& batch : last) {
      RF_CHECK_MSG(batch.num_columns() == 3, "ts, symbol, close: got %zu columns", batch.num_columns());
      RF_CHECK(batch.column_index("close") == 2);
    }

    auto all = c.bars("test", "", "1m");
    auto stream = all.export_stream();
    ringfeed::UniqueSchema schema;
    RF_CHECK(stream->get_schema(stream.get(), schema.get()) == 0);
    RF_CHECK(schema->n_children >= 7);
    std::int64_t rows = 0;
    for (;;) {
      ringfeed::UniqueArray a;
      RF_CHECK(stream->get_next(stream.get(), a.get()) == 0);
      if (!a) break;
      rows += a->length;
    }
    RF_CHECK(rows == 125 && std::uint64_t(rows) == all.num_rows());
  });

  rftest::run("replay: history from a time, then live, no gap or duplicate", [&] {
    // A feed appends minutes 100..220 of R, one at a time, from its own connection.
    constexpr std::int64_t kFrom = 100, kEnd = 220;
    std::atomic<std::int64_t> fed{kFrom};
    std::string feed_error;
    struct Joined : std::thread {
      using std::thread::thread;
      ~Joined() {
        if (joinable()) join();
      }
    };
    Joined feed([&] {
      try {
        ringfeed::Client f(daemon->socket());
        for (std::int64_t m = kFrom; m < kEnd; ++m) {
          append_bars(f, minutes({"R"}, m, 1));
          fed.store(m + 1);
        }
      } catch (const std::exception& e) {
        feed_error = e.what();
      }
    });
    // Join mid-feed, so both the history and the live part are non-empty.
    while (fed.load() < kFrom + 20 && feed_error.empty()) usleep(1000);
    auto r = c.replay("test", "1m", kT0 + kFrom * kMin, {"R"});
    RF_CHECK(r.seam() > 0);
    RF_CHECK_MSG(r.history_rows() >= 20, "history has %llu rows", (unsigned long long)r.history_rows());
    std::vector<std::int64_t> seen;
    while (seen.empty() || seen.back() != kEnd - 1) {
      auto b = r.read(std::chrono::seconds(20));
      if (!b) {
        RF_CHECK_MSG(false, "replay stalled after minute %lld", seen.empty() ? -1LL : (long long)seen.back());
        break;
      }
      auto m = minutes_of(*b, "R");
      seen.insert(seen.end(), m.begin(), m.end());
    }
    feed.join();
    RF_CHECK_MSG(feed_error.empty(), "%s", feed_error.c_str());
    std::vector<std::int64_t> want;
    for (std::int64_t m = kFrom; m < kEnd; ++m) want.push_back(m);
    RF_CHECK_MSG(seen == want, "saw %zu minutes, want %zu (seam %llu)", seen.size(), want.size(),
                 (unsigned long long)r.seam());
    RF_CHECK(!r.in_history());
  });

  rftest::run("errors: DaemonError kinds, bad arguments, the connection survives", [&] {
    auto daemon_kind = [&](auto&& f) -> std::string {
      try {
        f();
      } catch (const ringfeed::DaemonError& e) {
        const ringfeed::Error& base = e;
        RF_CHECK(base.kind() == ringfeed::ErrorKind::Daemon);
        std::printf("  ok: DaemonError %s: %s\n", e.kind().c_str(), e.what());
        return e.kind();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "  not a DaemonError: %s\n", e.what());
      }
      return "(none)";
    };
    RF_CHECK(daemon_kind([&] { c.bars("nope", "", "1m"); }) == "unknown_dataset");
    RF_EXPECT_THROW(ringfeed::DaemonError, "test", c.bars("nope", "", "1m"));  // names the known ones
    RF_CHECK(daemon_kind([&] { c.bars("test", "", "7 parsecs"); }) == "bad_timeframe");
    RF_CHECK(daemon_kind([&] { c.subscribe("test", "3m"); }) == "bad_timeframe");
    RF_CHECK(daemon_kind([&] { c.replay("test", "3m", kT0); }) == "bad_timeframe");
    RF_EXPECT_THROW(ringfeed::DaemonError, "is not before end", c.bars("test", "", "1m", kT0 + 10, kT0));
    RF_EXPECT_THROW(ringfeed::DaemonError, "YYYY-MM-DD", c.replay("test", "1m", "someday"));
    RF_EXPECT_THROW(ringfeed::Error, "invalid argument", c.bars(std::string("bad\xff"), "", "1m"));
    // A batch without the bar columns.
    auto odd = rftest::make_struct({rftest::f64_col("x", {1.0})});
    RF_EXPECT_THROW(ringfeed::DaemonError, "", c.append("test", odd.first.get(), odd.second.get()));
    RF_CHECK(!odd.first);
    RF_EXPECT_THROW(ringfeed::Error, "ArrowSchema pointer is null",
                    c.append("test", to_arrow(minutes({"Z"}, 0, 1)).first.get(), nullptr));
    RF_EXPECT_THROW(ringfeed::Error, "different lengths",
                    c.append_bars("test", {kT0}, std::vector<std::string>{}, {1.0}, {1.0}, {1.0}, {1.0}, {1.0}));
    // The store's row rules apply to C++ appends too: high < low, a NaN close, a bar off
    // the 1m grid are refused whole (nothing stored), naming the row.
    const std::vector<std::string> bad_sym{"BAD"};
    RF_EXPECT_THROW(ringfeed::DaemonError, "append:1",
                    c.append_bars("test", {kT0}, bad_sym, {2.0}, {1.0}, {3.0}, {2.0}, {1.0}));
    RF_EXPECT_THROW(ringfeed::DaemonError, "close",
                    c.append_bars("test", {kT0}, bad_sym, {2.0}, {3.0}, {1.0}, {std::nan("")}, {1.0}));
    RF_EXPECT_THROW(ringfeed::DaemonError, "grid",
                    c.append_bars("test", {kT0 + 17'000'000'000}, bad_sym, {2.0}, {3.0}, {1.0}, {2.0}, {1.0}));
    // Nothing of them was stored: the symbol is unknown to the dataset.
    RF_EXPECT_THROW(ringfeed::DaemonError, "BAD", c.bars("test", "BAD", "1m"));
    c.ping();
  });

  rftest::run("delete_range and write_down through the daemon", [&] {
    RF_CHECK(append_bars(c, minutes({"DEL"}, 0, 30)) == 30);
    const std::string del = c.delete_range("test", kT0 + 10 * kMin, "2021-01-01 00:20", "DEL");
    RF_CHECK_MSG(del == "deleted from 1 days of test", "%s", del.c_str());
    auto b = c.bars("test", "DEL", "1m");
    RF_CHECK_MSG(b.num_rows() == 20, "%zu rows", b.num_rows());
    RF_EXPECT_THROW(ringfeed::DaemonError, "unknown dataset \"nope\"", c.delete_range("nope", kT0, kT0 + kMin));
    const std::string wd = c.write_down("test");
    RF_CHECK_MSG(wd.rfind("wrote down ", 0) == 0, "%s", wd.c_str());
    RF_CHECK(c.bars("test", "DEL", "1m").num_rows() == 20);
  });

  rftest::run("SIGTERM: the daemon exits 0, cleans up; mapped results stay readable", [&] {
    auto replay = c.replay("test", "5m", kT0, {"AAA"});
    // Readers are still attached (sub1, replay, kept): the daemon must not wait for them.
    // The client's next request then hits a closed socket: an error, not SIGPIPE
    // (Rust's UnixStream sends with MSG_NOSIGNAL).
    const int rc = daemon->terminate();
    RF_CHECK_MSG(rc == 0, "ringfeedd exited %d", rc);
    RF_CHECK(!fs::exists(daemon->socket()));
    auto left = arenas();
    RF_CHECK_MSG(left.empty(), "%zu arenas left, e.g. %s", left.size(), left.empty() ? "" : left[0].c_str());
    // The subscriber drains what was published, then sees Closed.
    bool closed = false;
    for (int i = 0; i < 1000 && !closed; ++i) {
      try {
        if (!sub1->read(std::chrono::seconds(10))) break;
      } catch (const ringfeed::Closed&) {
        closed = true;
      } catch (const ringfeed::Lagged&) {
        // The replay's feed lapped this idle reader's ring; it goes on from the oldest batch.
      }
    }
    RF_CHECK(closed);
    // A replay delivers its history (mapped before the stop), then Closed too.
    std::size_t history = 0;
    RF_EXPECT_THROW(ringfeed::Closed, "closed", for (;;) {
      auto b = replay.read(std::chrono::seconds(10));
      if (!b) break;
      history += b->num_rows();
    });
    RF_CHECK_MSG(history == 13, "AAA has 13 5m bars (00:00 to 01:00), replayed %zu", history);
    RF_CHECK(kept && closes(*kept) == range_closes(10, 20));
    RF_EXPECT_THROW(ringfeed::ConnectError, "ringfeedd", c.ping());
  });

  sub1.reset();
  kept.reset();
  daemon.reset();
  fs::remove_all(dir);
  return rftest::finish();
}
