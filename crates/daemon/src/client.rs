//! The Rust client of `ringfeedd`: queries land as Arrow batches that point
//! into the daemon's shared memory; subscriptions are ring readers.

use crate::protocol::{
    read_frame, write_frame, QuerySpec, ReplaySpec, Request, Response, TimeSpec,
};
use arrow_array::RecordBatch;
use ringfeed_arrow::{Batch, Reader, ReaderOptions, StartAt};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[error("connection to ringfeedd failed: {0}")]
    Io(String),
    /// The daemon's answer lacks what the request needs (a version mismatch?).
    #[error("unexpected answer from ringfeedd: {0}")]
    Protocol(String),
    /// The batch to append could not be encoded as an Arrow IPC stream.
    #[error("cannot encode the batch to append: {0}")]
    Encode(String),
    /// The daemon refused the request.
    #[error("ringfeedd: {message}")]
    Server {
        /// Machine-readable kind (see `protocol::WireError`).
        kind: String,
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
}

impl Replay {
    /// The next batch: history first (oldest to newest, as the store holds it),
    /// then live batches from the seam on. `Ok(None)` when nothing arrives
    /// within `timeout`. When the daemon stops, `Err(ClientError::Read { source:
    /// ReadError::Closed, .. })`; a subscriber too slow for the topic ring gets
    /// `ReadError::Lagged` (it lost batches) and may go on reading.
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
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.live.read(left) {
                // Published before the snapshot was taken: already in the history.
                Ok(Some(b)) if b.seq() < self.seam => continue,
                Ok(b) => return Ok(b),
                Err(source) => {
                    return Err(ClientError::Read {
                        arena: self.live_arena.clone(),
                        source,
                    })
                }
            }
        }
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
}

/// Default for [`Client::set_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to `ringfeedd`.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// Socket path: `$RINGFEED_SOCKET`, else the daemon's default.
pub fn socket_path() -> PathBuf {
    std::env::var_os("RINGFEED_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(crate::config::default_socket)
}

impl Client {
    /// Connects to the daemon at `path` (default: [`socket_path`]).
    pub fn connect(path: Option<&Path>) -> Result<Self, ClientError> {
        let path = path.map(Path::to_path_buf).unwrap_or_else(socket_path);
        let s =
            UnixStream::connect(&path).map_err(|source| ClientError::Connect { path, source })?;
        // A hung daemon must not hang its clients forever.
        s.set_read_timeout(Some(DEFAULT_TIMEOUT))
            .and_then(|_| s.set_write_timeout(Some(DEFAULT_TIMEOUT)))
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let r = s.try_clone().map_err(|e| ClientError::Io(e.to_string()))?;
        Ok(Self {
            reader: BufReader::new(r),
            writer: s,
        })
    }

    /// How long a request may wait for the daemon's answer (`None`: forever).
    /// Default 120 s: a cold query of a large range can take seconds.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer
            .set_read_timeout(timeout)
            .and_then(|_| self.writer.set_write_timeout(timeout))
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// Sends one request and waits for its answer.
    pub fn call(&mut self, req: &Request, payload: &[u8]) -> Result<Response, ClientError> {
        let sent = write_frame(&mut self.writer, req, payload);
        // A daemon that refuses a request (busy, oversize) answers and hangs up,
        // possibly before the request is written: its answer is the better error.
        let (resp, _): (Response, _) = match (sent, read_frame(&mut self.reader, 0)) {
            (Ok(()), got) => got.map_err(|e| ClientError::Io(e.to_string()))?,
            (Err(_), Ok(got)) => got,
            (Err(e), Err(_)) => return Err(ClientError::Io(e.to_string())),
        };
        if resp.ok {
            Ok(resp)
        } else {
            let e = resp.error.unwrap_or(crate::protocol::WireError {
                kind: "internal".into(),
                message: "error without details".into(),
            });
            Err(ClientError::Server {
                kind: e.kind,
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
    /// `start` (of `symbols`, empty for all), then every live batch, with no
    /// gap and no duplicate where history ends and live data begins.
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
        let resp = self.call(
            &Request::Replay(ReplaySpec {
                dataset: dataset.into(),
                timeframe: timeframe.into(),
                start,
                symbols: symbols.to_vec(),
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

    /// Deletes the bars of `symbol` (default every symbol) in `[start, end)` (ns since the
    /// epoch): a correction, with the rollups rewritten. Returns the daemon's summary.
    pub fn delete(
        &mut self,
        dataset: &str,
        symbol: Option<&str>,
        start: i64,
        end: i64,
    ) -> Result<String, ClientError> {
        let resp = self.call(
            &Request::Delete {
                dataset: dataset.into(),
                symbol: symbol.map(Into::into),
                start: crate::protocol::TimeSpec::Nanos(start),
                end: crate::protocol::TimeSpec::Nanos(end),
            },
            &[],
        )?;
        Ok(resp.text.unwrap_or_default())
    }

    /// Appends rows at the dataset's base timeframe; returns once durable.
    pub fn append(&mut self, dataset: &str, batch: &RecordBatch) -> Result<u64, ClientError> {
        let mut payload = Vec::new();
        {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut payload, batch.schema_ref())
                .map_err(|e| ClientError::Encode(e.to_string()))?;
            w.write(batch)
                .map_err(|e| ClientError::Encode(e.to_string()))?;
            w.finish().map_err(|e| ClientError::Encode(e.to_string()))?;
        }
        let resp = self.call(
            &Request::Append {
                dataset: dataset.into(),
            },
            &payload,
        )?;
        Ok(resp.rows.unwrap_or(0))
    }
}
