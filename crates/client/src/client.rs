//! The Rust client of `ringfeedd`: queries land as Arrow batches that point
//! into the daemon's shared memory; subscriptions are ring readers. The Python
//! and C++ bindings wrap this type; they add no protocol code of their own.

use crate::protocol::{
    read_frame, symbol_list, write_frame, AppendReport, DatasetSpec, ErrorKind, InvalidRows,
    QuerySpec, ReadyReport, ReplaySpec, Request, Response, TimeSpec, WireError,
};
use arrow_array::RecordBatch;
use ringfeed_arrow::{Batch, Reader, ReaderOptions, StartAt};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No daemon listens on the socket.
    #[error("cannot connect to ringfeedd at {path:?}: {source}; start it with `ringfeed serve` (or set RINGFEED_SOCKET)")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The connection broke, or the daemon did not answer within the timeout.
    /// The connection is closed; the next call opens a new one.
    #[error("connection to ringfeedd failed: {0} (the next call reconnects)")]
    Io(String),
    /// The socket's listener or directory belongs to another user.
    #[error(transparent)]
    Peer(#[from] crate::peer::PeerError),
    /// The daemon's answer lacks what the request needs (a version mismatch?).
    #[error("unexpected answer from ringfeedd: {0}")]
    Protocol(String),
    /// The batch to append could not be encoded as an Arrow IPC stream.
    #[error("cannot encode the batch to append: {0}")]
    Encode(String),
    /// The daemon refused the request.
    #[error("ringfeedd: {message}")]
    Server {
        /// Machine-readable kind.
        kind: ErrorKind,
        /// What it said.
        message: String,
    },
    /// A read of a replay's history or live topic failed: match `source` for
    /// `Closed` (the daemon stopped), `WriterGone` (it died) or `Lagged` (this
    /// subscriber fell behind the ring and missed batches: a gap).
    #[error("reading {arena:?}: {source}")]
    Read {
        /// Arena name.
        arena: String,
        /// The ring's error.
        source: ringfeed_arrow::ReadError,
    },
    /// The answer's arena could not be mapped or read.
    #[error("reading the daemon's arena {arena:?} failed: {message}")]
    Arena {
        /// Arena name.
        arena: String,
        /// Ring error.
        message: String,
    },
}

/// A query answer: the batches (zero-copy, in the daemon's arena).
#[derive(Debug)]
pub struct Bars {
    /// Arena that holds them.
    pub arena: String,
    /// The result, in order; each batch keeps its slot leased.
    pub batches: Vec<Batch>,
    /// Total rows.
    pub rows: u64,
    /// Whether the daemon answered from its cache.
    pub cached: bool,
}

impl Bars {
    /// The record batches (cheap clones sharing the leased buffers).
    pub fn record_batches(&self) -> Vec<RecordBatch> {
        self.batches
            .iter()
            .map(|b| b.record_batch().clone())
            .collect()
    }
}

/// A subscription that replays history from a time and then continues live,
/// with no gap and no duplicate at the seam ([`Client::replay`]).
pub struct Replay {
    /// Reader of the history arena, until its batches are read.
    history: Option<Reader>,
    history_arena: String,
    /// History batches not yet read.
    left: u64,
    history_rows: u64,
    live: Reader,
    live_arena: String,
    seam: u64,
    /// Symbols kept from live batches (empty: all).
    symbols: Vec<String>,
}

impl Replay {
    /// The next batch: history first (oldest to newest, as the store holds it),
    /// then live batches from the seam on, holding only the replay's symbols.
    /// `Ok(None)` when nothing arrives within `timeout`. When the daemon stops,
    /// `Err(ClientError::Read { source: ReadError::Closed, .. })`; a subscriber
    /// too slow for the topic ring gets `ReadError::Lagged` (it lost batches)
    /// and may go on reading.
    pub fn read(&mut self, timeout: Duration) -> Result<Option<Batch>, ClientError> {
        if let Some(h) = &mut self.history {
            if self.left > 0 {
                let b = h.read(timeout).map_err(|source| ClientError::Read {
                    arena: self.history_arena.clone(),
                    source,
                })?;
                return match b {
                    Some(b) => {
                        self.left -= 1;
                        Ok(Some(b))
                    }
                    None => Err(ClientError::Arena {
                        arena: self.history_arena.clone(),
                        message: "timed out reading the replayed history".into(),
                    }),
                };
            }
            // Done with the history: detach so the daemon may evict it.
            self.history = None;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.live.read(left) {
                // Published before the snapshot was taken: already in the history.
                Ok(Some(b)) if b.seq() < self.seam => continue,
                Ok(Some(b)) => match keep_symbols(b, &self.symbols) {
                    Some(b) => return Ok(Some(b)),
                    // None of this subscription's symbols: wait for the next batch.
                    None if left.is_zero() => return Ok(None),
                    None => continue,
                },
                Ok(None) => return Ok(None),
                Err(source) => {
                    return Err(ClientError::Read {
                        arena: self.live_arena.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// For event loops: `Ok(Some(fd))` to wait for readability before the next
    /// `read(Duration::ZERO)`, or `Ok(None)` when that read would not wait (history is
    /// left, or a live batch is ready). See [`ringfeed_arrow::Reader::arm`].
    pub fn arm(&mut self) -> std::io::Result<Option<std::os::fd::RawFd>> {
        if self.history.is_some() {
            return Ok(None);
        }
        self.live.arm()
    }

    /// Undoes [`Replay::arm`].
    pub fn disarm(&mut self) {
        self.live.disarm()
    }

    /// The first live topic seq after the history.
    pub fn seam(&self) -> u64 {
        self.seam
    }

    /// Rows in the history part.
    pub fn history_rows(&self) -> u64 {
        self.history_rows
    }

    /// Whether history batches remain to be read.
    pub fn in_history(&self) -> bool {
        self.history.is_some() && self.left > 0
    }

    /// The live topic reader.
    pub fn live(&self) -> &Reader {
        &self.live
    }

    /// The symbols this subscription keeps (empty: all).
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }
}

/// `b` with only the rows of `symbols` (all of it when `symbols` is empty);
/// `None` when no row is left. A batch whose rows all match is returned as is
/// (zero-copy); a mixed batch is filtered into a copy of the matching rows.
pub fn keep_symbols(b: Batch, symbols: &[String]) -> Option<Batch> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    if symbols.is_empty() {
        return Some(b);
    }
    let Some(col) = b.column_by_name("symbol") else {
        return Some(b);
    };
    let col = arrow_cast_to_views(col)?;
    let views = col.as_string_view();
    let mask: arrow_array::BooleanArray = (0..views.len())
        .map(|i| Some(views.is_valid(i) && symbols.iter().any(|s| s == views.value(i))))
        .collect();
    let kept = mask.true_count();
    if kept == b.num_rows() {
        Some(b)
    } else if kept == 0 {
        None
    } else {
        let rb = arrow_select::filter::filter_record_batch(b.record_batch(), &mask).ok()?;
        Some(b.with_record_batch(rb))
    }
}

fn arrow_cast_to_views(col: &arrow_array::ArrayRef) -> Option<arrow_array::ArrayRef> {
    use arrow_schema::DataType;
    match col.data_type() {
        DataType::Utf8View => Some(col.clone()),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Dictionary(..) => {
            arrow_cast::cast(col, &DataType::Utf8View).ok()
        }
        _ => None,
    }
}

/// Default for [`Client::set_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Default socket path: `$XDG_RUNTIME_DIR/ringfeed.sock`, else
/// `/tmp/ringfeed-$UID/ringfeed.sock` (a private directory: see [`crate::peer`]).
pub fn default_socket() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("ringfeed.sock"),
        _ => crate::peer::fallback_dir().join("ringfeed.sock"),
    }
}

/// The real uid of this process.
pub fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is our real uid; no libc call needed.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// Socket path: `$RINGFEED_SOCKET`, else [`default_socket`].
pub fn socket_path() -> PathBuf {
    std::env::var_os("RINGFEED_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(default_socket)
}

/// One open socket.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn open(path: &Path, timeout: Option<Duration>) -> Result<Conn, ClientError> {
        let s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        // Appends must never reach a listener of another user.
        crate::peer::check_peer(&s, path)?;
        // A hung daemon must not hang its clients forever.
        s.set_read_timeout(timeout)
            .and_then(|_| s.set_write_timeout(timeout))
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let r = s.try_clone().map_err(|e| ClientError::Io(e.to_string()))?;
        Ok(Conn {
            reader: BufReader::new(r),
            writer: s,
        })
    }
}

/// How one exchange on a connection ended.
enum Exchange {
    Answer(Box<Response>),
    /// The connection was already dead (the daemon restarted or closed it while
    /// idle): nothing was processed, the request may be sent again.
    Dead(String),
    /// Broken or timed out mid-request: the daemon may have acted on it.
    Failed(String),
}

/// A connection to `ringfeedd`. A connection that broke or timed out is
/// dropped and the next call opens a new one, so a late answer is never read
/// as the answer to a later request, and a restarted daemon is reached again.
pub struct Client {
    path: PathBuf,
    conn: Option<Conn>,
    timeout: Option<Duration>,
}

impl Client {
    /// Connects to the daemon at `path` (default: [`socket_path`]).
    pub fn connect(path: Option<&Path>) -> Result<Self, ClientError> {
        let path = path.map(Path::to_path_buf).unwrap_or_else(socket_path);
        let conn = Conn::open(&path, Some(DEFAULT_TIMEOUT))?;
        Ok(Self {
            path,
            conn: Some(conn),
            timeout: Some(DEFAULT_TIMEOUT),
        })
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a request may wait for the daemon's answer (`None`: forever).
    /// Default 120 s: a cold query of a large range can take seconds.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.timeout = timeout;
        if let Some(c) = &self.conn {
            c.writer
                .set_read_timeout(timeout)
                .and_then(|_| c.writer.set_write_timeout(timeout))
                .map_err(|e| ClientError::Io(e.to_string()))?;
        }
        Ok(())
    }

    fn exchange(conn: &mut Conn, req: &Request, payload: &[u8]) -> Exchange {
        use std::io::ErrorKind as K;
        let dead = |e: &std::io::Error| {
            matches!(
                e.kind(),
                K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
            )
        };
        let sent = write_frame(&mut conn.writer, req, payload);
        // A daemon that refuses a request (busy, oversize) answers and hangs up,
        // possibly before the request is written: its answer is the better error.
        match (sent, read_frame::<_, Response>(&mut conn.reader, 0)) {
            (_, Ok((resp, _))) => Exchange::Answer(Box::new(resp)),
            (Err(e), Err(_)) if dead(&e) => Exchange::Dead(e.to_string()),
            (Err(e), Err(_)) => Exchange::Failed(e.to_string()),
            (Ok(()), Err(crate::protocol::FrameError::Eof)) => {
                Exchange::Dead("the daemon closed the connection".into())
            }
            (Ok(()), Err(e)) => Exchange::Failed(e.to_string()),
        }
    }

    /// Sends one request and waits for its answer. A connection found dead
    /// (the daemon restarted) is reopened once and the request sent again:
    /// every request is idempotent (appends replace bars by key).
    pub fn call(&mut self, req: &Request, payload: &[u8]) -> Result<Response, ClientError> {
        let mut retried = false;
        let resp = loop {
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self.conn.insert(Conn::open(&self.path, self.timeout)?),
            };
            match Self::exchange(conn, req, payload) {
                Exchange::Answer(r) => break *r,
                Exchange::Dead(m) => {
                    self.conn = None;
                    if retried {
                        return Err(ClientError::Io(m));
                    }
                    retried = true;
                }
                Exchange::Failed(m) => {
                    self.conn = None;
                    return Err(ClientError::Io(m));
                }
            }
        };
        if resp.ok {
            Ok(resp)
        } else {
            let e = resp.error.unwrap_or(WireError {
                kind: "internal".into(),
                message: "error without details".into(),
            });
            Err(ClientError::Server {
                kind: ErrorKind::parse(&e.kind),
                message: e.message,
            })
        }
    }

    /// Round trip.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.call(&Request::Ping, &[]).map(|_| ())
    }

    /// Metrics text (Prometheus format).
    pub fn stat(&mut self) -> Result<String, ClientError> {
        Ok(self.call(&Request::Stat, &[])?.text.unwrap_or_default())
    }

    /// Datasets with their timeframes and symbols.
    pub fn datasets(&mut self) -> Result<serde_json::Value, ClientError> {
        Ok(self.call(&Request::Datasets, &[])?.data.unwrap_or_default())
    }

    /// Creates a dataset through the daemon (the daemon holds the store's one
    /// writer lock, so this is how a dataset is made while it runs). The same
    /// settings again are a no-op. Returns the daemon's summary.
    pub fn create_dataset(&mut self, spec: &DatasetSpec) -> Result<String, ClientError> {
        Ok(self
            .call(&Request::CreateDataset(spec.clone()), &[])?
            .text
            .unwrap_or_default())
    }

    /// Whether the daemon can answer queries and appends, and how far the data
    /// of `dataset` (default: every dataset) goes.
    pub fn ready(&mut self, dataset: Option<&str>) -> Result<ReadyReport, ClientError> {
        let resp = self.call(
            &Request::Ready {
                dataset: dataset.map(Into::into),
            },
            &[],
        )?;
        let data = resp
            .data
            .ok_or_else(|| ClientError::Protocol("ready answer without data".into()))?;
        serde_json::from_value(data).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Whether queries and appends work right now, subsystem by subsystem
    /// (the daemon checks its locks with a bounded wait, its data directory,
    /// its result cache and its topics).
    pub fn health(&mut self) -> Result<crate::protocol::HealthReport, ClientError> {
        let data = self
            .call(&Request::Health, &[])?
            .data
            .ok_or_else(|| ClientError::Protocol("health answer without data".into()))?;
        serde_json::from_value(data).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Runs a query; the result is mapped from the daemon's arena, not copied.
    pub fn bars(&mut self, q: &QuerySpec) -> Result<Bars, ClientError> {
        let resp = self.call(&Request::Query(q.clone()), &[])?;
        let arena = resp
            .arena
            .ok_or_else(|| ClientError::Protocol("query answer without an arena".into()))?;
        let n = resp.batches.unwrap_or(0);
        let arena_err = |message: String| ClientError::Arena {
            arena: arena.clone(),
            message,
        };
        let read = (|| {
            let mut r =
                Reader::open(&arena, StartAt::Oldest).map_err(|e| arena_err(e.to_string()))?;
            let mut batches = Vec::with_capacity(n as usize);
            while (batches.len() as u64) < n {
                match r.read(Duration::from_secs(10)) {
                    Ok(Some(b)) => batches.push(b),
                    Ok(None) => return Err(arena_err("timed out reading the result".into())),
                    Err(e) => return Err(arena_err(e.to_string())),
                }
            }
            Ok(batches)
        })();
        // Mapped (or failed): either way the daemon may now account for it by its leases.
        let _ = self.call(
            &Request::Release {
                arena: arena.clone(),
            },
            &[],
        );
        Ok(Bars {
            batches: read?,
            arena,
            rows: resp.rows.unwrap_or(0),
            cached: resp.cached.unwrap_or(false),
        })
    }

    /// A reader of the live topic ring of (dataset, timeframe).
    pub fn subscribe(
        &mut self,
        dataset: &str,
        timeframe: &str,
        start: StartAt,
    ) -> Result<Reader, ClientError> {
        self.subscribe_with(
            dataset,
            timeframe,
            ReaderOptions {
                start,
                ..Default::default()
            },
        )
    }

    /// [`Client::subscribe`] with every reader option (e.g. a spin budget for
    /// the lowest latency on a machine with a core to spare).
    pub fn subscribe_with(
        &mut self,
        dataset: &str,
        timeframe: &str,
        opts: ReaderOptions,
    ) -> Result<Reader, ClientError> {
        let resp = self.call(
            &Request::Subscribe {
                dataset: dataset.into(),
                timeframe: timeframe.into(),
            },
            &[],
        )?;
        let arena = resp
            .arena
            .ok_or_else(|| ClientError::Protocol("subscribe answer without an arena".into()))?;
        Reader::open_with(&arena, opts).map_err(|e| ClientError::Arena {
            arena,
            message: e.to_string(),
        })
    }

    /// Subscribes to (dataset, timeframe) from `start` on: the bars stored from
    /// `start` (of `symbols`, empty for all), then every live batch (only the
    /// rows of `symbols`), with no gap and no duplicate where history ends and
    /// live data begins.
    pub fn replay(
        &mut self,
        dataset: &str,
        timeframe: &str,
        start: TimeSpec,
        symbols: &[String],
    ) -> Result<Replay, ClientError> {
        // The live reader joins first, so it holds every publication from the
        // seam the daemon reports next.
        let live = self.subscribe(dataset, timeframe, StartAt::Next)?;
        let live_arena = live.ring().name().to_string();
        let symbols = symbol_list(symbols);
        let resp = self.call(
            &Request::Replay(ReplaySpec {
                dataset: dataset.into(),
                timeframe: timeframe.into(),
                start,
                symbols: symbols.clone(),
            }),
            &[],
        )?;
        let (arena, seam) = match (resp.arena, resp.seq) {
            (Some(a), Some(s)) => (a, s),
            _ => {
                return Err(ClientError::Protocol(
                    "replay answer without arena or seq".into(),
                ))
            }
        };
        let history = Reader::open(&arena, StartAt::Oldest).map_err(|e| ClientError::Arena {
            arena: arena.clone(),
            message: e.to_string(),
        });
        // Mapped (or failed): the daemon now accounts for it by its reader row.
        let _ = self.call(
            &Request::Release {
                arena: arena.clone(),
            },
            &[],
        );
        Ok(Replay {
            history: Some(history?),
            history_arena: arena,
            left: resp.batches.unwrap_or(0),
            history_rows: resp.rows.unwrap_or(0),
            live,
            live_arena,
            seam,
            symbols,
        })
    }

    /// Asks the daemon to move finished days into Parquet now: days before `before`
    /// ("YYYY-MM-DD"; default before today), or every day with `all`, of `dataset` (default
    /// all). Returns the daemon's one-line summary.
    pub fn write_down(
        &mut self,
        dataset: Option<&str>,
        before: Option<&str>,
        all: bool,
    ) -> Result<String, ClientError> {
        let resp = self.call(
            &Request::WriteDown {
                dataset: dataset.map(Into::into),
                before: before.map(Into::into),
                all,
            },
            &[],
        )?;
        Ok(resp.text.unwrap_or_default())
    }

    /// Deletes the bars of `symbol` (default every symbol) in `[start, end)`: a
    /// correction, with the rollups rewritten. Returns the daemon's summary.
    pub fn delete(
        &mut self,
        dataset: &str,
        symbol: Option<&str>,
        start: TimeSpec,
        end: TimeSpec,
    ) -> Result<String, ClientError> {
        let resp = self.call(
            &Request::Delete {
                dataset: dataset.into(),
                symbol: symbol.map(Into::into),
                start,
                end,
            },
            &[],
        )?;
        Ok(resp.text.unwrap_or_default())
    }

    /// Sets (`None`: clears) a dataset's retention and the longer retention of its
    /// rollups ("400d", "26w", "2y"), then applies it at once. Returns the daemon's
    /// summary.
    pub fn set_retention(
        &mut self,
        dataset: &str,
        retention: Option<&str>,
        rollup_retention: Option<&str>,
    ) -> Result<String, ClientError> {
        let resp = self.call(
            &Request::SetRetention {
                dataset: dataset.into(),
                retention: retention.map(Into::into),
                rollup_retention: rollup_retention.map(Into::into),
            },
            &[],
        )?;
        Ok(resp.text.unwrap_or_default())
    }

    /// Removes the rows of `symbol` (default every symbol) with `ts < before`, in every
    /// stored timeframe. Returns the daemon's summary.
    pub fn trim(
        &mut self,
        dataset: &str,
        symbol: Option<&str>,
        before: TimeSpec,
    ) -> Result<String, ClientError> {
        let resp = self.call(
            &Request::Trim {
                dataset: dataset.into(),
                symbol: symbol.map(Into::into),
                before,
            },
            &[],
        )?;
        Ok(resp.text.unwrap_or_default())
    }

    /// Drops a dataset and its files. Without `yes`, a dataset holding rows is refused
    /// (`bad_request`, saying what it holds). Returns the daemon's summary.
    pub fn drop_dataset(&mut self, dataset: &str, yes: bool) -> Result<String, ClientError> {
        let resp = self.call(
            &Request::DropDataset {
                dataset: dataset.into(),
                yes,
            },
            &[],
        )?;
        Ok(resp.text.unwrap_or_default())
    }

    /// Appends rows at the dataset's base timeframe; returns the rows stored once
    /// durable. A row that breaks the store's rules refuses the whole append
    /// (`bad_request`, naming the first bad rows); see [`Client::append_with`].
    pub fn append(&mut self, dataset: &str, batch: &RecordBatch) -> Result<u64, ClientError> {
        Ok(self
            .append_with(dataset, std::slice::from_ref(batch), InvalidRows::Refuse)?
            .rows_stored)
    }

    /// Appends several batches of one schema as one request (one IPC stream,
    /// validated and stored as one), with `invalid` deciding what happens to
    /// rows that break a rule; the report says what was stored and rejected.
    pub fn append_with(
        &mut self,
        dataset: &str,
        batches: &[RecordBatch],
        invalid: InvalidRows,
    ) -> Result<AppendReport, ClientError> {
        let Some(first) = batches.first() else {
            return Ok(AppendReport::default());
        };
        let mut payload = Vec::new();
        {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut payload, first.schema_ref())
                .map_err(|e| ClientError::Encode(e.to_string()))?;
            for b in batches {
                w.write(b).map_err(|e| ClientError::Encode(e.to_string()))?;
            }
            w.finish().map_err(|e| ClientError::Encode(e.to_string()))?;
        }
        let resp = self.call(
            &Request::Append {
                dataset: dataset.into(),
                invalid,
            },
            &payload,
        )?;
        Ok(resp.report.unwrap_or(AppendReport {
            rows_stored: resp.rows.unwrap_or(0),
            ..Default::default()
        }))
    }
}
