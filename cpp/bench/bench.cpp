// rf-bench-cpp: the C++ API's one-way latency and throughput.
//
//   rf-bench-cpp [--samples N] [--warmup N] [--big-rows N] [--big-iters N] [--skip-latency]
//
// Latency (two processes, fork): the writer takes CLOCK_MONOTONIC, builds a
// 1-row bar batch from C++ vectors around it (its `ts`), and publishes it
// with write_bars; the reader, asleep in FUTEX_WAIT (spin 0), reads the clock
// as soon as `read` returns the Batch and keeps the difference. Sends are
// paced as in the Rust `rf-latency`: the writer waits for the reader's
// acknowledgement of the previous message, then busy-waits a jittered
// 75-125 us, so the reader is asleep when each batch arrives and none is lost. A raw FUTEX_WAKE of a
// sleeping process is measured the same way, in the same run, as the floor.
//
// Throughput (one process): write_bars and write(ArrowArray) of 1-row and
// big (1M-row) bar batches, the reader's read of a big batch (O(1)) and a
// sum over its close column, against memcpy of the same bytes.
//
// Build with -DCMAKE_BUILD_TYPE=Release (the Rust side is then --release too).
#include "common.hpp"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>
#include <atomic>
#include <fstream>

namespace {

struct Config {
  std::size_t samples = 20000;
  std::size_t warmup = 2000;
  std::size_t big_rows = 1000000;
  std::size_t big_iters = 20;
  bool latency = true;
};

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct Stats {
  double p50, p99, p999, max, mean;
  std::size_t n;
};

Stats stats(std::vector<std::uint64_t> v) {
  Stats s{};
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto q = [&](double p) { return double(v[std::min(v.size() - 1, std::size_t(p * double(v.size())))]) / 1000.0; };
  double sum = 0;
  for (auto x : v) sum += double(x);
  s.p50 = q(0.5);
  s.p99 = q(0.99);
  s.p999 = q(0.999);
  s.max = double(v.back()) / 1000.0;
  s.mean = sum / double(v.size()) / 1000.0;
  return s;
}

void print_row(const char* mode, const Stats& s, const char* what) {
  std::printf("%-16s %8.2f %8.2f %9.2f %9.1f %8.2f %7zu  %s\n", mode, s.p50, s.p99, s.p999, s.max, s.mean, s.n, what);
}

struct Jitter {
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  std::uint64_t next(std::uint64_t lo, std::uint64_t hi) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return lo + x % (hi - lo);
  }
};

/// Waits until the reader acknowledged `n` messages (it sets `count`), so no
/// message is sent before the previous one was received, and none is lost.
void wait_ack(const std::atomic<std::uint64_t>& count, std::uint64_t n) {
  const std::uint64_t deadline = rftest::monotonic_ns() + 10'000'000'000ull;
  while (count.load(std::memory_order_acquire) < n)
    if (rftest::monotonic_ns() > deadline) throw std::runtime_error("the bench reader stopped acknowledging");
}

void spin_until(std::uint64_t t) {
  while (rftest::monotonic_ns() < t) {
  }
}

/// Shared (MAP_SHARED | MAP_ANONYMOUS, inherited over fork) scratch for the child's samples.
struct Shared {
  std::atomic<std::uint32_t> word;
  std::atomic<std::uint32_t> ready;
  std::atomic<std::uint64_t> ts;
  std::atomic<std::uint64_t> count;
  std::uint64_t samples[1];
};

Shared* map_shared(std::size_t n) {
  std::size_t bytes = sizeof(Shared) + n * sizeof(std::uint64_t);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
  return new (p) Shared{};
}

long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val, const timespec* t) {
  // Shared (not PRIVATE) futex: the waiter is another process.
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), op, val, t, nullptr, 0);
}

/// Waits up to 60 s for the child, then kills it.
int wait_child(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 6000; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  std::fprintf(stderr, "bench child did not finish within 60 s: killed\n");
  return 124;
}

/// Raw FUTEX_WAKE of a sleeping process: the floor under any futex-mode ring.
Stats raw_futex(const Config& c) {
  const std::size_t total = c.warmup + c.samples;
  Shared* sh = map_shared(total);
  pid_t pid = fork();
  if (pid == 0) {
    // Message k (1-based) sets the word to k. Under load two sends can land
    // while the child sleeps; it then records only the newest one.
    std::uint32_t seen = 0;
    sh->ready.store(1);
    const std::uint64_t deadline = rftest::monotonic_ns() + 600'000'000'000ull;
    while (seen < total && rftest::monotonic_ns() < deadline) {
      while (sh->word.load(std::memory_order_acquire) == seen) {
        timespec t{0, 100000000};
        futex(&sh->word, FUTEX_WAIT, seen, &t);
        if (rftest::monotonic_ns() >= deadline) _exit(3);
      }
      std::uint64_t now = rftest::monotonic_ns();
      std::uint64_t ts = sh->ts.load(std::memory_order_acquire);
      seen = sh->word.load(std::memory_order_acquire);
      if (ts <= now) sh->samples[seen - 1] = now - ts;  // else ts is already the next send's
      sh->count.store(seen);
    }
    _exit(0);
  }
  while (sh->ready.load() == 0) usleep(100);
  usleep(10000);
  Jitter jit;
  std::uint64_t next = rftest::monotonic_ns() + 1000000;
  for (std::size_t i = 0; i < total; ++i) {
    wait_ack(sh->count, i);
    next = rftest::monotonic_ns() + jit.next(75000, 125000);
    spin_until(next);
    sh->ts.store(rftest::monotonic_ns(), std::memory_order_release);
    sh->word.fetch_add(1, std::memory_order_release);
    futex(&sh->word, FUTEX_WAKE, 1, nullptr);
  }
  wait_child(pid);
  std::vector<std::uint64_t> v;
  for (std::size_t i = c.warmup; i < total; ++i)
    if (sh->samples[i] != 0) v.push_back(sh->samples[i]);
  return stats(v);
}

/// The C++ API end to end: write_bars of a 1-row batch -> Reader::read in another process.
std::pair<Stats, Stats> arrow_futex(const Config& c, bool* zero_copy) {
  const std::size_t total = c.warmup + c.samples;
  Shared* sh = map_shared(total);
  auto name = rftest::unique_name("bench-lat");
  pid_t pid = fork();
  if (pid == 0) {
    int rc = 0;
    try {
      std::optional<ringfeed::Reader> r;
      while (!r) {
        try {
          r.emplace(name, ringfeed::ReaderOptions{ringfeed::StartAt::Next, std::chrono::microseconds(0), false});
        } catch (const ringfeed::NotFound&) {
          usleep(1000);
        }
      }
      bool zc = true;
      for (std::uint64_t got = 0; got < total;) {
        try {
          auto b = r->read(std::chrono::seconds(10));
          if (!b) {
            rc = 3;
            break;
          }
          std::uint64_t now = rftest::monotonic_ns();
          auto ts = b->column<std::int64_t>(0);
          auto volume = b->column<double>(6);
          zc = zc && b->is_zero_copy();
          std::size_t i = std::size_t(volume[0]);
          if (i < total) sh->samples[i] = now - std::uint64_t(ts[0]);
          got = i + 1;
          sh->count.store(got);
        } catch (const ringfeed::Lagged&) {
        }
      }
      sh->ready.store(zc ? 2 : 3);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench reader: %s\n", e.what());
      rc = 1;
    }
    _exit(rc);
  }
  ringfeed::RingOptions o;
  o.slots = 64;
  o.slot_bytes = 64 << 10;
  auto w = ringfeed::Writer::create_bars(name, o);
  if (!w.wait_for_readers(1, std::chrono::seconds(10))) throw std::runtime_error("bench reader did not attach");
  Jitter jit;
  std::vector<std::uint64_t> send;
  const std::vector<std::string> symbol = {"BTCUSDT"};
  const std::vector<double> price = {29000.5};
  std::uint64_t next = rftest::monotonic_ns() + 1000000;
  for (std::size_t i = 0; i < total; ++i) {
    wait_ack(sh->count, i);
    next = rftest::monotonic_ns() + jit.next(75000, 125000);
    spin_until(next);
    std::uint64_t ts = rftest::monotonic_ns();
    // Built after the timestamp, so its cost counts (as in rf-latency).
    std::vector<std::int64_t> tsv = {std::int64_t(ts)};
    std::vector<double> volume = {double(i)};
    w.write_bars(tsv, symbol, price, price, price, price, volume);
    std::uint64_t done = rftest::monotonic_ns();
    if (i >= c.warmup) send.push_back(done - ts);
  }
  int rc = wait_child(pid);
  if (rc != 0) std::fprintf(stderr, "bench reader exited %d\n", rc);
  *zero_copy = sh->ready.load() == 2;
  w.close();
  std::vector<std::uint64_t> v;
  for (std::size_t i = c.warmup; i < total; ++i)
    if (sh->samples[i] != 0) v.push_back(sh->samples[i]);
  return {stats(v), stats(send)};
}

double gbps(double bytes, double ns) { return bytes / ns; }

template <class F>
std::vector<std::uint64_t> time_n(std::size_t n, F&& f) {
  std::vector<std::uint64_t> v;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t t0 = rftest::monotonic_ns();
    f(i);
    v.push_back(rftest::monotonic_ns() - t0);
  }
  return v;
}

void throughput(const Config& c) {
  std::printf("\nthroughput (one process; us per batch, p50 of N)\n");
  std::printf("%-44s %10s %10s %8s\n", "case", "p50 us", "batches/s", "GB/s");
  auto row = [](const char* what, std::vector<std::uint64_t> v, double bytes) {
    Stats s = stats(std::move(v));
    std::printf("%-44s %10.2f %10.0f %8.2f\n", what, s.p50, 1e6 / s.p50, bytes > 0 ? gbps(bytes, s.p50 * 1000) : 0.0);
  };

  // 1-row batches.
  {
    auto name = rftest::unique_name("bench-small");
    ringfeed::RingOptions o;
    o.slots = 64;
    o.slot_bytes = 64 << 10;
    auto w = ringfeed::Writer::create_bars(name, o);
    ringfeed::Reader r(name, ringfeed::StartAt::Next);
    auto b = rftest::bars(1, 1);
    const std::size_t n = 20000;
    row("write_bars, 1 row (no reader waiting)", time_n(n, [&](std::size_t) { rftest::write_bars(w, b); }), 0);
    // Drain what is there, then measure write + read in one thread.
    while (true) {
      try {
        if (!r.try_read()) break;
      } catch (const ringfeed::Lagged&) {
      }
    }
    row("write_bars + read + column<double>, 1 row", time_n(n, [&](std::size_t) {
          rftest::write_bars(w, b);
          auto got = r.try_read();
          volatile double x = got->column<double>(5)[0];
          (void)x;
        }),
        0);
    row("write(ArrowArray), 1 row", time_n(n, [&](std::size_t) {
          auto arr = rftest::bars_arrow(1, 1);
          w.write(arr.first.get(), arr.second.get());
        }),
        0);
  }

  // Big batches.
  const std::size_t rows = c.big_rows;
  const double bytes = double(rows) * (8 + 16 + 5 * 8);  // ts, symbol views, five f64 columns
  {
    auto name = rftest::unique_name("bench-big");
    ringfeed::RingOptions o;
    o.slots = 2;
    o.max_readers = 1;
    o.leases_per_reader = 1;
    o.slot_bytes = std::uint64_t(bytes) + (1 << 20);
    auto w = ringfeed::Writer::create_bars(name, o);
    ringfeed::Reader r(name, ringfeed::StartAt::Next);
    auto b = rftest::bars(1, rows);
    // memcpy of the same bytes, for scale (source and destination reused, warm).
    {
      const std::size_t n = static_cast<std::size_t>(bytes);
      std::vector<std::uint8_t> src(n, 1), dst(n);
      row("memcpy of the same bytes (baseline)", time_n(c.big_iters, [&](std::size_t i) {
            src[0] = std::uint8_t(i);
            std::memcpy(dst.data(), src.data(), src.size());
          }),
          bytes);
    }
    std::string label = "write_bars, " + std::to_string(rows) + " rows";
    row(label.c_str(), time_n(c.big_iters, [&](std::size_t) { rftest::write_bars(w, b); }), bytes);
    // The generic path: the C++ producer's buffers are imported without a copy,
    // fully validated, then copied once into the slot.
    std::vector<std::pair<ringfeed::UniqueArray, ringfeed::UniqueSchema>> arrays;
    for (std::size_t i = 0; i < c.big_iters; ++i) arrays.push_back(rftest::bars_arrow(1, rows));
    label = "write(ArrowArray), " + std::to_string(rows) + " rows";
    row(label.c_str(), time_n(c.big_iters, [&](std::size_t i) { w.write(arrays[i].first.get(), arrays[i].second.get()); }),
        bytes);
    // Reader: open a committed batch (O(1) in rows) and touch its close column.
    while (true) {
      try {
        if (!r.try_read()) break;
      } catch (const ringfeed::Lagged&) {
      }
    }
    std::vector<std::uint64_t> open_ns, sum_ns;
    double total = 0;
    for (std::size_t i = 0; i < c.big_iters; ++i) {
      rftest::write_bars(w, b);
      std::uint64_t t0 = rftest::monotonic_ns();
      auto got = r.try_read();
      auto close = got->column<double>("close");
      std::uint64_t t1 = rftest::monotonic_ns();
      double s = 0;
      for (double x : close) s += x;
      std::uint64_t t2 = rftest::monotonic_ns();
      total += s;
      open_ns.push_back(t1 - t0);
      sum_ns.push_back(t2 - t1);
    }
    label = "read + column<double>, " + std::to_string(rows) + " rows";
    row(label.c_str(), open_ns, 0);
    label = "sum of close in place, " + std::to_string(rows) + " rows";
    row(label.c_str(), sum_ns, double(rows) * 8);
    if (total == 0) std::printf("(sum was 0)\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::size_t {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return std::stoull(argv[++i]);
    };
    if (a == "--samples") c.samples = val();
    else if (a == "--warmup") c.warmup = val();
    else if (a == "--big-rows") c.big_rows = val();
    else if (a == "--big-iters") c.big_iters = val();
    else if (a == "--skip-latency") c.latency = false;
    else {
      std::fprintf(stderr, "usage: rf-bench-cpp [--samples N] [--warmup N] [--big-rows N] [--big-iters N] [--skip-latency]\n");
      return 2;
    }
  }
  try {
    std::string before = loadavg();
    if (c.latency) {
      Stats raw = raw_futex(c);
      bool zc = false;
      auto [lat, send] = arrow_futex(c, &zc);
      std::printf("one-way latency, CLOCK_MONOTONIC before publish -> reader holds it (us)\n");
      std::printf("%-16s %8s %8s %9s %9s %8s %7s  what\n", "mode", "p50", "p99", "p99.9", "max", "mean", "n");
      print_row("raw_futex", raw, "raw FUTEX_WAKE of a sleeping process (baseline)");
      print_row("cpp_arrow_futex", lat, zc ? "C++ write_bars 1 row -> C++ Reader::read, futex" : "(NOT zero-copy!)");
      std::printf("ratio cpp_arrow_futex/raw_futex: p50 %.2fx, p99 %.2fx\n", lat.p50 / raw.p50, lat.p99 / raw.p99);
      std::printf("writer-side cost of one send (timestamp -> write_bars returned): p50 %.2f us, p99 %.2f us\n",
                  send.p50, send.p99);
    }
    throughput(c);
    std::printf("\nload average before %s, after %s\n", before.c_str(), loadavg().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rf-bench-cpp: %s\n", e.what());
    return 1;
  }
  return 0;
}
