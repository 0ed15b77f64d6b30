// Shared pieces of the C++ tests, test programs and bench: the bar formula
// (the contract with rf-xtest and the Python suite), a tiny assertion
// harness with a watchdog, a C Data Interface producer for plain C++
// vectors, and a process runner.
#pragma once

#include <ringfeed/ringfeed.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace rftest {

// ---------------------------------------------------------------------------
// Harness.

inline int& failures() {
  static int n = 0;
  return n;
}

#define RF_CHECK(cond)                                                                      \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
      ++::rftest::failures();                                                               \
    }                                                                                       \
  } while (0)

#define RF_CHECK_MSG(cond, ...)                                                             \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);         \
      std::fprintf(stderr, __VA_ARGS__);                                                    \
      std::fprintf(stderr, "\n");                                                           \
      ++::rftest::failures();                                                               \
    }                                                                                       \
  } while (0)

/// Runs `body`, expecting it to throw `E`; checks that what() contains `needle`.
template <class E, class F>
void expect_throw(const char* file, int line, F&& body, const char* needle) {
  try {
    body();
    std::fprintf(stderr, "%s:%d: expected an exception, none was thrown\n", file, line);
    ++failures();
  } catch (const E& e) {
    if (std::strstr(e.what(), needle) == nullptr) {
      std::fprintf(stderr, "%s:%d: message %s does not contain \"%s\"\n", file, line, e.what(), needle);
      ++failures();
    } else {
      std::printf("  ok: threw \"%s\"\n", e.what());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s:%d: wrong exception type: %s\n", file, line, e.what());
    ++failures();
  }
}
#define RF_EXPECT_THROW(E, needle, ...) ::rftest::expect_throw<E>(__FILE__, __LINE__, [&] { __VA_ARGS__; }, needle)

/// Runs one named test case; an escaping exception counts as a failure.
inline void run(const char* name, const std::function<void()>& f) {
  std::printf("[ RUN  ] %s\n", name);
  std::fflush(stdout);
  int before = failures();
  try {
    f();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: unexpected exception: %s\n", name, e.what());
    ++failures();
  }
  std::printf("[ %s ] %s\n", failures() == before ? " OK " : "FAIL", name);
  std::fflush(stdout);
}

inline int finish() {
  if (failures() != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", failures());
    return 1;
  }
  std::printf("all checks passed\n");
  return 0;
}

/// Kills the process with a message if it runs longer than `seconds` (a hang fails fast).
inline void watchdog(unsigned seconds) {
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    static const char msg[] = "watchdog: test timed out\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(124);
  };
  sigaction(SIGALRM, &sa, nullptr);
  alarm(seconds);
}

/// A ring name unique to this process and call.
inline std::string unique_name(const std::string& stem) {
  static int n = 0;
  return "rf-cpp-" + stem + "-" + std::to_string(getpid()) + "-" + std::to_string(++n);
}

inline std::uint64_t monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(t.tv_nsec);
}

// ---------------------------------------------------------------------------
// The bar formula: batch seq i (1-based), row j:
//   ts = i*1e9 + j ns UTC, symbol = "S{j%4}", open = i + 0.5*j,
//   high = open + 1, low = open - 1, close = open + 0.25, volume = j.

inline double bar_open(std::uint64_t seq, std::size_t j) { return double(seq) + double(j) * 0.5; }
inline std::int64_t bar_ts(std::uint64_t seq, std::size_t j) {
  return std::int64_t(seq) * 1000000000ll + std::int64_t(j);
}

struct Bars {
  std::vector<std::int64_t> ts;
  std::vector<std::string> symbol;
  std::vector<double> open, high, low, close, volume;
};

inline Bars bars(std::uint64_t seq, std::size_t rows) {
  static const char* const kSymbols[4] = {"S0", "S1", "S2", "S3"};
  Bars b;
  b.ts.resize(rows);
  b.symbol.resize(rows);
  b.open.resize(rows);
  b.high.resize(rows);
  b.low.resize(rows);
  b.close.resize(rows);
  b.volume.resize(rows);
  for (std::size_t j = 0; j < rows; ++j) {
    double o = bar_open(seq, j);
    b.ts[j] = bar_ts(seq, j);
    b.symbol[j] = kSymbols[j % 4];
    b.open[j] = o;
    b.high[j] = o + 1.0;
    b.low[j] = o - 1.0;
    b.close[j] = o + 0.25;
    b.volume[j] = double(j);
  }
  return b;
}

inline std::uint64_t write_bars(ringfeed::Writer& w, const Bars& b) {
  return w.write_bars(b.ts, b.symbol, b.open, b.high, b.low, b.close, b.volume);
}

/// Checks every cell of `batch` against the formula for `seq`; "" if all match,
/// else a message naming the first wrong cell. Reads columns in place.
inline std::string verify_bars(const ringfeed::Batch& batch, std::uint64_t seq) {
  std::ostringstream err;
  const std::size_t n = batch.num_rows();
  if (n == 0) return "batch " + std::to_string(seq) + ": no rows";
  if (batch.num_columns() != 7) return "batch " + std::to_string(seq) + ": not 7 columns";
  auto ts = batch.column<std::int64_t>("ts");
  auto sym = batch.strings("symbol");
  auto open = batch.column<double>("open");
  auto high = batch.column<double>("high");
  auto low = batch.column<double>("low");
  auto close = batch.column<double>("close");
  auto volume = batch.column<double>("volume");
  for (auto* c : {&open, &high, &low, &close, &volume})
    if (c->size() != n || c->null_count() != 0) return "batch " + std::to_string(seq) + ": bad column size or nulls";
  if (ts.size() != n || sym.size() != n || ts.null_count() != 0 || sym.null_count() != 0)
    return "batch " + std::to_string(seq) + ": bad ts/symbol size or nulls";
  for (std::size_t j = 0; j < n; ++j) {
    double o = bar_open(seq, j);
    auto cell = [&](const char* name, const std::string& got, const std::string& want) {
      err << "batch " << seq << " row " << j << " column " << name << ": got " << got << ", expected " << want;
      return err.str();
    };
    if (ts[j] != bar_ts(seq, j)) return cell("ts", std::to_string(ts[j]), std::to_string(bar_ts(seq, j)));
    std::string want_sym = "S" + std::to_string(j % 4);
    if (sym[j] != want_sym) return cell("symbol", std::string(sym[j]), want_sym);
    // Every value is a small multiple of 0.25, exact in double.
    const std::pair<const char*, std::pair<double, double>> cells[] = {
        {"open", {open[j], o}},          {"high", {high[j], o + 1.0}},         {"low", {low[j], o - 1.0}},
        {"close", {close[j], o + 0.25}}, {"volume", {volume[j], double(j)}},
    };
    for (const auto& [name, gw] : cells)
      if (std::memcmp(&gw.first, &gw.second, sizeof(double)) != 0)
        return cell(name, std::to_string(gw.first), std::to_string(gw.second));
  }
  return "";
}

/// Whether every value buffer the column views expose lies inside the arena.
inline bool columns_in_arena(const ringfeed::Batch& b) {
  const std::size_t n = b.num_rows();
  auto inside = [&](const void* p, std::size_t bytes) {
    auto r = b.arena_range();
    auto a = reinterpret_cast<std::uintptr_t>(p);
    return a >= r.first && a + bytes <= r.second;
  };
  bool ok = inside(b.column<std::int64_t>("ts").data(), n * 8);
  for (const char* c : {"open", "high", "low", "close", "volume"}) ok = ok && inside(b.column<double>(c).data(), n * 8);
  auto sym = b.strings("symbol");
  for (std::size_t j = 0; j < n && ok; ++j) ok = inside(sym[j].data(), sym[j].size());
  return ok;
}

// ---------------------------------------------------------------------------
// A C Data Interface producer for plain C++ columns (what a feed handler
// without libarrow would write). The exported array owns the vectors.

struct Col {
  std::string name;
  std::string format;
  std::int64_t length = 0;
  std::int64_t flags = 0;
  std::vector<std::vector<std::uint8_t>> storage;  // one per buffer (empty = null pointer)
  std::vector<bool> null_buffer;                    // buffer k is NULL
  std::int64_t null_count = 0;                      // with a validity bitmap in storage[0]
};

template <class T>
std::vector<std::uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<std::uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

template <class T>
Col fixed_col(std::string name, std::string format, const std::vector<T>& v) {
  Col c{std::move(name), std::move(format), std::int64_t(v.size()), 0, {}, {}};
  c.storage = {{}, bytes_of(v)};
  c.null_buffer = {true, false};
  return c;
}
inline Col f64_col(std::string name, const std::vector<double>& v) { return fixed_col(std::move(name), "g", v); }
inline Col i64_col(std::string name, const std::vector<std::int64_t>& v) { return fixed_col(std::move(name), "l", v); }
inline Col i32_col(std::string name, const std::vector<std::int32_t>& v) { return fixed_col(std::move(name), "i", v); }
inline Col ts_utc_col(std::string name, const std::vector<std::int64_t>& v) {
  return fixed_col(std::move(name), "tsn:UTC", v);
}

inline Col utf8_col(std::string name, const std::vector<std::string>& v) {
  std::vector<std::int32_t> offsets{0};
  std::vector<std::uint8_t> data;
  for (const auto& s : v) {
    data.insert(data.end(), s.begin(), s.end());
    offsets.push_back(std::int32_t(data.size()));
  }
  Col c{std::move(name), "u", std::int64_t(v.size()), 0, {}, {}};
  c.storage = {{}, bytes_of(offsets), data};
  c.null_buffer = {true, false, data.empty()};
  return c;
}

/// Utf8View: strings of up to 12 bytes inline, longer ones in one data buffer.
inline Col utf8view_col(std::string name, const std::vector<std::string>& v) {
  std::vector<std::uint8_t> views(v.size() * 16, 0), data;
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint8_t* p = views.data() + 16 * i;
    std::int32_t len = std::int32_t(v[i].size());
    std::memcpy(p, &len, 4);
    if (len <= 12) {
      std::memcpy(p + 4, v[i].data(), v[i].size());
    } else {
      std::int32_t buf = 0, off = std::int32_t(data.size());
      std::memcpy(p + 4, v[i].data(), 4);
      std::memcpy(p + 8, &buf, 4);
      std::memcpy(p + 12, &off, 4);
      data.insert(data.end(), v[i].begin(), v[i].end());
    }
  }
  Col c{std::move(name), "vu", std::int64_t(v.size()), 0, {}, {}};
  std::vector<std::int64_t> sizes;
  c.storage = {{}, views};
  c.null_buffer = {true, false};
  if (!data.empty()) {
    sizes.push_back(std::int64_t(data.size()));
    c.storage.push_back(data);
    c.null_buffer.push_back(false);
  }
  // The C Data Interface appends the variadic buffer sizes (int64 each).
  c.storage.push_back(bytes_of(sizes));
  c.null_buffer.push_back(sizes.empty());
  return c;
}

namespace detail {
struct ArrayNode {
  std::shared_ptr<std::vector<Col>> cols;
  std::vector<const void*> buffers;
  std::vector<ArrowArray> children;
  std::vector<ArrowArray*> child_ptrs;
};
inline void release_array(ArrowArray* a) {
  auto* n = static_cast<ArrayNode*>(a->private_data);
  for (ArrowArray* c : n->child_ptrs)
    if (c->release != nullptr) c->release(c);
  delete n;
  a->release = nullptr;
}
struct SchemaNode {
  std::string format, name;
  std::vector<ArrowSchema> children;
  std::vector<ArrowSchema*> child_ptrs;
};
inline void release_schema(ArrowSchema* s) {
  auto* n = static_cast<SchemaNode*>(s->private_data);
  for (ArrowSchema* c : n->child_ptrs)
    if (c->release != nullptr) c->release(c);
  delete n;
  s->release = nullptr;
}
}  // namespace detail

/// Exports `cols` as a struct array (a record batch) and its schema.
inline std::pair<ringfeed::UniqueArray, ringfeed::UniqueSchema> make_struct(std::vector<Col> cols) {
  auto owned = std::make_shared<std::vector<Col>>(std::move(cols));
  const std::int64_t len = owned->empty() ? 0 : owned->front().length;
  std::pair<ringfeed::UniqueArray, ringfeed::UniqueSchema> out;

  auto* top = new detail::ArrayNode{owned, {nullptr}, {}, {}};
  top->children.resize(owned->size());
  auto* stop = new detail::SchemaNode{"+s", "", {}, {}};
  stop->children.resize(owned->size());
  for (std::size_t i = 0; i < owned->size(); ++i) {
    Col& c = (*owned)[i];
    auto* n = new detail::ArrayNode{owned, {}, {}, {}};
    for (std::size_t k = 0; k < c.storage.size(); ++k)
      n->buffers.push_back(c.null_buffer[k] ? nullptr : static_cast<const void*>(c.storage[k].data()));
    ArrowArray& a = top->children[i];
    a = ArrowArray{c.length, c.null_count, 0, std::int64_t(n->buffers.size()), 0, n->buffers.data(), nullptr, nullptr,
                   &detail::release_array, n};
    top->child_ptrs.push_back(&a);

    auto* sn = new detail::SchemaNode{c.format, c.name, {}, {}};
    ArrowSchema& s = stop->children[i];
    s = ArrowSchema{sn->format.c_str(), sn->name.c_str(), nullptr, c.flags, 0, nullptr, nullptr,
                    &detail::release_schema, sn};
    stop->child_ptrs.push_back(&s);
  }
  *out.first.get() = ArrowArray{len,
                                0,
                                0,
                                1,
                                std::int64_t(owned->size()),
                                top->buffers.data(),
                                top->child_ptrs.data(),
                                nullptr,
                                &detail::release_array,
                                top};
  *out.second.get() = ArrowSchema{stop->format.c_str(), stop->name.c_str(), nullptr, 0,
                                  std::int64_t(owned->size()), stop->child_ptrs.data(), nullptr,
                                  &detail::release_schema, stop};
  return out;
}

/// The formula batch for `seq` as a C Data Interface struct array.
inline std::pair<ringfeed::UniqueArray, ringfeed::UniqueSchema> bars_arrow(std::uint64_t seq, std::size_t rows) {
  Bars b = bars(seq, rows);
  return make_struct({ts_utc_col("ts", b.ts), utf8view_col("symbol", b.symbol), f64_col("open", b.open),
                      f64_col("high", b.high), f64_col("low", b.low), f64_col("close", b.close),
                      f64_col("volume", b.volume)});
}

// ---------------------------------------------------------------------------
// Child processes.

/// A spawned child whose stdout is a pipe (and stdin too, if asked).
struct Child {
  pid_t pid = -1;
  int out = -1;
  /// The write end of the child's stdin, or -1 if it inherited ours.
  int in = -1;

  /// Closes the child's stdin (it reads EOF).
  void close_stdin() {
    if (in >= 0) close(in);
    in = -1;
  }
  std::string buffered;

  /// Reads stdout until a line containing `needle` appears, or `timeout_ms` passes.
  bool wait_for_line(const std::string& needle, int timeout_ms) {
    std::uint64_t deadline = monotonic_ns() + std::uint64_t(timeout_ms) * 1000000ull;
    while (buffered.find(needle) == std::string::npos) {
      std::uint64_t now = monotonic_ns();
      if (now >= deadline) return false;
      pollfd p{out, POLLIN, 0};
      int left = int((deadline - now) / 1000000ull) + 1;
      if (poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = read(out, buf, sizeof buf);
      if (n <= 0) return buffered.find(needle) != std::string::npos;
      buffered.append(buf, std::size_t(n));
    }
    return true;
  }

  /// Reads stdout to EOF and waits for exit (killing the child after `timeout_ms`). Returns the exit code.
  int finish(int timeout_ms) {
    wait_for_line("\x01never\x01", timeout_ms);  // drain until EOF or timeout
    std::uint64_t deadline = monotonic_ns() + 2000000000ull;
    int status = 0;
    for (;;) {
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (monotonic_ns() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        std::fprintf(stderr, "child %d timed out and was killed\n", int(pid));
        break;
      }
      usleep(2000);
    }
    close(out);
    out = -1;
    pid = -1;
    close_stdin();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  void kill_now(int sig = SIGKILL) {
    if (pid > 0) {
      kill(pid, sig);
      int status = 0;
      waitpid(pid, &status, 0);
      pid = -1;
    }
    if (out >= 0) close(out);
    out = -1;
    close_stdin();
  }
};

inline Child spawn(const std::vector<std::string>& argv, bool pipe_stdin = false) {
  int fds[2], ins[2] = {-1, -1};
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  if (pipe_stdin && pipe(ins) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  if (pipe_stdin) {
    posix_spawn_file_actions_adddup2(&fa, ins[0], 0);
    posix_spawn_file_actions_addclose(&fa, ins[1]);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Child c;
  int rc = posix_spawn(&c.pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (pipe_stdin) close(ins[0]);
  if (rc != 0) {
    close(fds[0]);
    if (pipe_stdin) close(ins[1]);
    throw std::runtime_error("cannot spawn " + argv[0] + ": " + std::strerror(rc));
  }
  c.out = fds[0];
  c.in = ins[1];
  return c;
}

}  // namespace rftest
